import { readProgram } from '../support/api.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHost, openHosts } from '../support/hosts.ts';

test('closing a tab mid-task loses nothing and its tasks resume from their checkpoints', async ({ browser, api }) => {
  const [doomed] = await openHosts(browser, api.baseUrl, 1, 2);
  const steps = 20;
  const id = await api.submit({
    name: 'steps',
    program: readProgram('e2e/programs/steps.js'),
    inputs: Array.from({ length: 6 }, (_, index) => ({ index, steps, stepMs: 100 })),
  });

  // both tasks on the doomed tab have checkpointed a few steps (progress comes with them)
  await expect.poll(async () => (await doomed!.snapshot()).running.filter((r) => r.progress >= 0.2).length).toBe(2);
  const lost = (await doomed!.snapshot()).running.map((r) => r.tid);
  await doomed!.close();

  await openHosts(browser, api.baseUrl, 2, 2);
  await api.waitForState(id, 'done');
  const results = (await api.results(id)) as { index: number; steps: number; resumedFrom: number | null; tid: string }[];
  expect(results.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5]);
  for (const r of results) expect(r.steps).toBe(steps);
  for (const tid of lost) {
    const r = results.find((x) => x.tid === tid)!;
    expect(r.resumedFrom).not.toBeNull();
    expect(r.resumedFrom!).toBeGreaterThanOrEqual(3);
  }
  const job = await api.job(id);
  expect(job.tasks.done).toBe(6);
});

test('a new tab joining takes tasks that no other tab holds', async ({ browser, api }) => {
  const id = await api.submit({
    name: 'late hosts',
    program: readProgram('e2e/programs/steps.js'),
    inputs: Array.from({ length: 4 }, (_, index) => ({ index, steps: 2, stepMs: 10 })),
  });
  expect((await api.job(id)).state).toBe('queued');
  await openHost(browser, api.baseUrl, 2);
  await api.waitForState(id, 'done');
  expect(((await api.results(id)) as { index: number }[]).map((r) => r.index)).toEqual([0, 1, 2, 3]);
});
