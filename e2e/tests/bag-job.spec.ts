import { readProgram } from '../support/api.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';

test('three tabs run a 60-task pi job to done, every result once and within tolerance', async ({ browser, api }) => {
  const tabs = await openHosts(browser, api.baseUrl, 3, 2);
  const samples = 200_000;
  const id = await api.submit({
    name: 'pi-60',
    program: readProgram('examples/pi.ts'),
    inputs: Array.from({ length: 60 }, () => ({ samples })),
  });

  const job = await api.waitForState(id, 'done');
  expect(job.tasks).toEqual({ total: 60, pending: 0, running: 0, done: 60, failed: 0 });

  const results = (await api.results(id)) as { samples: number; inside: number; pi: number }[];
  expect(results).toHaveLength(60);
  // 5 standard deviations of the estimator 4·inside/samples
  const tolerance = 5 * Math.sqrt((Math.PI * (4 - Math.PI)) / samples);
  for (const r of results) {
    expect(r.samples).toBe(samples);
    expect(Math.abs(r.pi - Math.PI)).toBeLessThan(tolerance);
  }
  // 60 outcomes in all across the tabs: no task ran to completion twice
  const done = await Promise.all(tabs.map(async (t) => (await t.snapshot()).done));
  expect(done.reduce((a, b) => a + b, 0)).toBe(60);
  for (const d of done) expect(d).toBeGreaterThan(0);
});
