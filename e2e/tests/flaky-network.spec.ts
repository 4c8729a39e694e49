import { readProgram } from '../support/api.ts';
import { CuttingProxy } from '../support/cutting-proxy.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHost, openHosts } from '../support/hosts.ts';
import { totalCounters } from '../support/snapshots.ts';

const program = readProgram('examples/jacobi.ts');
// Each path's job outlasts several cuts: relay lanes carry a halo in about ten times a lane's time.
const iterations = { 'data channels': 6000, 'relay lanes': 2500 } as const;
const CUT_EVERY_MS = 3000;

for (const path of ['data channels', 'relay lanes'] as const) {
  test(`jacobi over 3 tabs whose connections to the coordinator drop every 3 s equals the single-task run, on ${path}`, async ({ browser, api, coordinator }) => {
    const grid = { n: 96, iterations: iterations[path] };
    const proxy = await CuttingProxy.start(coordinator.port);
    try {
      const tabs = await openHosts(browser, proxy.url, 3, 1, path === 'relay lanes' ? '&p2p=off' : '');
      const cutting = setInterval(() => proxy.cut(), CUT_EVERY_MS);
      try {
        const single = await api.submit({ name: 'jacobi-1', program, main: { ...grid, strips: 1 } });
        const split = await api.submit({ name: 'jacobi-3', program, main: { ...grid, strips: 3 } });
        const job = await api.waitForState(split, 'done', 180_000);
        await api.waitForState(single, 'done', 180_000);
        const [one] = (await api.results(single)) as { checksum: string }[];
        const [three] = (await api.results(split)) as { checksum: string }[];
        expect(three!.checksum).toBe(one!.checksum);
        // A job ends with its root, and a strip whose own outcome was still on its way through a
        // cut is cancelled then (job-book.ts #finishIfComplete): none failed, none left running.
        expect(job.tasks).toMatchObject({ total: 3, pending: 0, running: 0, failed: 0 });
        expect(job.tasks.done).toBeGreaterThanOrEqual(1);
      } finally {
        clearInterval(cutting);
      }
      // the job outlasted several cuts, and its halos crossed between tabs the way this test names
      expect(proxy.cuts).toBeGreaterThanOrEqual(3);
      const counters = await totalCounters(tabs);
      if (path === 'relay lanes') expect(counters.relayLaneOut).toBeGreaterThan(0);
      else expect(counters.laneOut).toBeGreaterThan(0);
      for (const tab of tabs) await expect.poll(async () => (await tab.snapshot()).connection, { timeout: 15_000 }).toBe('connected');
    } finally {
      await proxy.stop();
    }
  });
}

test('a token ring through the relay keeps its one token when one tab’s connection to the coordinator drops every 2 s and the others’ do not', async ({ browser, api, coordinator }) => {
  const tasks = 6;
  // 25–30 s through relay lanes on this machine, cuts and all: a dozen cuts
  const rounds = 1500;
  const proxy = await CuttingProxy.start(coordinator.port);
  try {
    await openHosts(browser, api.baseUrl, 2, 2, '&p2p=off');
    const flaky = await openHost(browser, proxy.url, 2, '&p2p=off');
    const id = await api.submit({ name: 'ring', program: readProgram('examples/token-ring.ts'), main: { tasks, rounds } });
    await expect.poll(async () => (await api.job(id)).tasks.running, { timeout: 30_000 }).toBe(tasks);
    // the token passes through the flaky tab every round: what is on its way there is cut again and again
    expect((await flaky.snapshot()).running.length).toBeGreaterThanOrEqual(1);
    const cutting = setInterval(() => proxy.cut(), 2000);
    try {
      const job = await api.waitForState(id, 'done', 180_000);
      expect(await api.results(id)).toEqual([expect.objectContaining({ tasks, rounds, token: tasks * rounds })]);
      expect(job.tasks).toMatchObject({ total: tasks, done: tasks, failed: 0 });
    } finally {
      clearInterval(cutting);
    }
    expect(proxy.cuts).toBeGreaterThanOrEqual(3);
  } finally {
    await proxy.stop();
  }
});
