import { Api } from '../support/api.ts';
import { ADMIN_TOKEN, CoordinatorProcess } from '../support/coordinator.ts';
import { expect, test } from '../support/fixtures.ts';
import { type VisibleBrowser, launchVisibleBrowser } from '../support/visible-browser.ts';
import { type VisibleHost, openVisibleHosts } from '../support/visible-hosts.ts';

/** Seconds from submit to done, and the results. */
async function timed(api: Api, job: Parameters<Api['submit']>[0]): Promise<{ seconds: number; results: unknown[] }> {
  const started = performance.now();
  const id = await api.submit(job);
  await api.waitForState(id, 'done', 120_000);
  return { seconds: (performance.now() - started) / 1000, results: await api.results(id) };
}

const squares = (n: number) => ({ name: 'squares', program: 'export default (ctx, x) => x * x;', inputs: Array.from({ length: n }, (_, i) => i) });

/** Tasks that spin for `ms` of CPU each and return their input. */
const spinning = (n: number, ms: number) => ({
  name: `spin-${ms}`,
  program: `export default (ctx, x) => { const end = performance.now() + ${ms}; while (performance.now() < end); return x; };`,
  inputs: Array.from({ length: n }, (_, i) => i),
});

/**
 * Volunteers leave their tabs hidden, where Chromium runs a page's timers about once a second.
 * On a path with a page timer per task (webpvm's was: its results waited for a 10 ms timer),
 * 2,000 trivial tasks over 3 hidden tabs took minutes and a 100 ms task lost half a second each.
 * The bound here is generous — 3× the same job on the same tabs visible, plus 2 s of slack for a
 * shared CI machine — and still far below what a throttled path needs.
 */
test('trivial and 100 ms tasks finish in hidden tabs as they do in visible ones, exact', async ({ api }) => {
  test.setTimeout(240_000);
  const browser = await launchVisibleBrowser();
  try {
    const hosts = await openVisibleHosts(browser, api.baseUrl, 3, 'slots=1&policy=always');
    for (const host of hosts) await host.show();
    await timed(api, squares(200));
    const visible = { trivial: await timed(api, squares(2000)), spin: await timed(api, spinning(60, 100)) };
    for (const host of hosts) await host.hide();
    const hidden = { trivial: await timed(api, squares(2000)), spin: await timed(api, spinning(60, 100)) };
    console.log(
      `2,000 trivial tasks: ${visible.trivial.seconds.toFixed(2)} s visible, ${hidden.trivial.seconds.toFixed(2)} s hidden; ` +
        `60 × 100 ms: ${visible.spin.seconds.toFixed(2)} s visible, ${hidden.spin.seconds.toFixed(2)} s hidden`,
    );
    expect(hidden.trivial.results).toEqual(Array.from({ length: 2000 }, (_, i) => i * i));
    expect(hidden.spin.results).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(hidden.trivial.seconds).toBeLessThan(3 * visible.trivial.seconds + 2);
    expect(hidden.spin.seconds).toBeLessThan(3 * visible.spin.seconds + 2);
    for (const host of hosts) expect((await host.snapshot()).connection).toBe('connected');
  } finally {
    await browser.close();
  }
});

/**
 * After five minutes hidden Chromium runs a page's chained timers once a minute (intensive
 * throttling); the feature flag brings that to ten seconds. With a page timer beating the heart
 * every second against a 5 s timeout, the coordinator would drop the host within the minute,
 * and the page would take another minute to reconnect. The host page's clock is a worker's.
 */
test('a host hidden under intensive throttling keeps its connection, takes work at once and reconnects at once', async () => {
  test.setTimeout(180_000);
  const coordinator = await CoordinatorProcess.start({ WEBPVM_HEARTBEAT_MS: '1000', WEBPVM_HOST_TIMEOUT_MS: '5000' });
  let browser: VisibleBrowser | null = null;
  try {
    const api = new Api(coordinator.url, ADMIN_TOKEN);
    browser = await launchVisibleBrowser(['--enable-features=IntensiveWakeUpThrottling:grace_period_seconds/10']);
    // no data channels: a page with a live WebRTC connection is spared intensive throttling
    const [host] = (await openVisibleHosts(browser, coordinator.url, 1, 'slots=1&policy=always&p2p=off')) as [VisibleHost];
    /** Who is connected and since when: a host that lost its connection and came back has a later `connectedAt`. */
    const connectedAt = async () =>
      ((await (await api.request('GET', '/api/hosts')).json()) as { hosts: { hostId: string; connected: boolean; connectedAt: string | null }[] }).hosts.map(
        ({ hostId, connected, connectedAt }) => ({ hostId, connected, connectedAt }),
      );
    const before = await connectedAt();
    expect(before).toEqual([expect.objectContaining({ connected: true })]);
    // Past the ten-second grace, a page timer fires once a minute: wait for more than one of those minutes.
    await new Promise((resolve) => setTimeout(resolve, 75_000));
    expect(await connectedAt()).toEqual(before);
    expect((await host.snapshot()).connection).toBe('connected');
    const { seconds, results } = await timed(api, squares(500));
    expect(results).toEqual(Array.from({ length: 500 }, (_, i) => i * i));
    expect(seconds).toBeLessThan(10);

    // A lost connection comes back within seconds too: the page retries at 250 ms, doubling to
    // 5 s. (Each retry is armed from a socket's close event, so even a page timer would escape
    // intensive throttling, which falls on chained timers; the heartbeat's interval would not.)
    await coordinator.kill();
    await expect.poll(async () => (await host.snapshot()).connection).not.toBe('connected');
    await coordinator.launch();
    const relaunched = performance.now();
    await expect.poll(async () => (await host.snapshot()).connection, { timeout: 60_000 }).toBe('connected');
    expect((performance.now() - relaunched) / 1000).toBeLessThan(15);
    const again = await timed(api, squares(500));
    expect(again.results).toEqual(Array.from({ length: 500 }, (_, i) => i * i));
  } finally {
    await browser?.close();
    await coordinator.stop();
  }
});
