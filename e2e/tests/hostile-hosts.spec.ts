import { Api } from '../support/api.ts';
import { CoordinatorProcess } from '../support/coordinator.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';
import { RawHost } from '../support/raw-host.ts';

/**
 * Strangers' browsers: beside two honest tabs (two volunteers), three raw-socket hosts — one
 * keeps every task it is given, one answers every task with an error, one drops its connection
 * whenever it is given tasks — and a job with `maxAttempts: 2`. Nothing of theirs counts against
 * the job: it finishes, exact, with no task failed. Leases here last 2 s at least
 * (WEBPVM_LEASE_FLOOR_MS), so that the hoarded ones come back within the test.
 */
test('a job finishes exact beside hosts that hoard, fail every task and flap their connection', async ({ browser }) => {
  test.setTimeout(120_000);
  const coordinator = await CoordinatorProcess.start({ WEBPVM_LEASE_FLOOR_MS: '2000' });
  const strangers: RawHost[] = [];
  try {
    const api = new Api(coordinator.url);
    for (const misbehaviour of ['hoard', 'fail', 'flap'] as const) strangers.push(await RawHost.connect(coordinator.url, misbehaviour));
    await openHosts(browser, coordinator.url, 2, 2);
    const total = 300;
    const id = await api.submit({ name: 'beside strangers', program: 'export default (ctx, x) => x * x;', inputs: Array.from({ length: total }, (_, i) => i), maxAttempts: 2 });
    const job = await api.waitForState(id, 'done', 90_000);
    expect(job.tasks).toEqual({ total, pending: 0, running: 0, done: total, failed: 0 });
    expect(await api.results(id)).toEqual(Array.from({ length: total }, (_, i) => i * i));

    const [hoarder, failer, flapper] = strangers as [RawHost, RawHost, RawHost];
    // each was given tasks, so each really stood in the job's way
    for (const stranger of strangers) expect(stranger.assigned.length).toBeGreaterThan(0);
    const cancelled = hoarder.received.flatMap((m) => (m.type === 'cancel' && m.reason === 'lease expired' ? m.tasks : []));
    expect(cancelled.length).toBeGreaterThan(0);
    // a task the liar failed went to someone else: the liar never saw the same task twice
    const failedTids = failer.assigned.map((t) => t.tid);
    expect(new Set(failedTids).size).toBe(failedTids.length);
    expect(flapper.assigned.length).toBeGreaterThan(0);
  } finally {
    for (const stranger of strangers) stranger.close();
    await coordinator.stop();
  }
});
