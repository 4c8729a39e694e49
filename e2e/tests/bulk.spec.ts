import { expect, test } from '../support/fixtures.ts';
import { launchVisibleBrowser } from '../support/visible-browser.ts';
import { openVisibleHosts } from '../support/visible-hosts.ts';

/**
 * Small tasks travel in batches end to end — leases, starts, outcomes, IndexedDB records, result
 * frames, acknowledgements — and a batch must not lose or repeat anything when a tab dies with
 * one in hand, or the coordinator dies between a batch's storing and its acknowledgement.
 */
test('a 50,000-task job over hidden tabs, one closed and the coordinator killed mid-run: every result exact, each once', async ({
  api,
  coordinator,
}) => {
  test.setTimeout(300_000);
  const total = 50_000;
  const browser = await launchVisibleBrowser();
  try {
    const hosts = await openVisibleHosts(browser, api.baseUrl, 4, 'slots=1&policy=always');
    const id = await api.submit({ name: 'bulk', program: 'export default (ctx, x) => x * x;', inputs: Array.from({ length: total }, (_, i) => i) });
    await api.waitFor(id, (job) => job.tasks.done >= 10_000, 120_000);
    // closed without a word (no beforeunload, no pagehide): what it held comes back after the host timeout
    await hosts[3]!.page.close();
    await api.waitFor(id, (job) => job.tasks.done >= 25_000, 120_000);
    await coordinator.kill();
    await expect.poll(async () => (await hosts[0]!.snapshot()).connection).not.toBe('connected');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await coordinator.launch();

    const job = await api.waitForState(id, 'done', 240_000);
    expect(job.tasks).toEqual({ total, pending: 0, running: 0, done: total, failed: 0 });
    expect(await api.results(id)).toEqual(Array.from({ length: total }, (_, i) => i * i));
    // what the tabs kept until acknowledged is all acknowledged: nothing left to send again
    for (const host of hosts.slice(0, 3)) await expect.poll(async () => (await host.snapshot()).pendingResults).toBe(0);
  } finally {
    await browser.close();
  }
});
