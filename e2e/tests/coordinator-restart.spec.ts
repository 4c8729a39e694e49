import { readProgram } from '../support/api.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';

test('a coordinator killed and restarted mid-job finishes it with no result lost or duplicated', async ({
  browser,
  api,
  coordinator,
}) => {
  const tabs = await openHosts(browser, api.baseUrl, 3, 2);
  const total = 30;
  const id = await api.submit({
    name: 'restart',
    program: readProgram('e2e/programs/steps.js'),
    inputs: Array.from({ length: total }, (_, index) => ({ index, steps: 5, stepMs: 100 })),
  });
  await api.waitFor(id, (job) => job.tasks.done >= 8);

  await coordinator.kill();
  // the tabs notice, keep their finished results in IndexedDB and reconnect by themselves
  await expect.poll(async () => (await tabs[0]!.snapshot()).connection).not.toBe('connected');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await coordinator.launch();

  const job = await api.waitForState(id, 'done');
  expect(job.tasks).toEqual({ total, pending: 0, running: 0, done: total, failed: 0 });
  const results = (await api.results(id)) as ({ index: number; steps: number } | null)[];
  // Seen once in a full run: a result read back as null after the restart. The rows say where.
  if (results.includes(null)) await test.info().attach('tasks.json', { body: JSON.stringify(await api.tasks(id), null, 1), contentType: 'application/json' });
  expect(results.map((r) => r?.index)).toEqual(Array.from({ length: total }, (_, i) => i));
  for (const r of results) expect(r!.steps).toBe(5);
  for (const tab of tabs) await expect.poll(async () => (await tab.snapshot()).pendingResults).toBe(0);
});
