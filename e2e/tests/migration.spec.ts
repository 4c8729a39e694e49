import { readProgram } from '../support/api.ts';
import { expect, test as base } from '../support/fixtures.ts';
import { type VisibleBrowser, launchVisibleBrowser } from '../support/visible-browser.ts';
import { openVisibleHosts } from '../support/visible-hosts.ts';

/** Each test gets a Chromium whose tabs really become hidden and visible. */
const test = base.extend<{ visible: VisibleBrowser }>({
  visible: async ({}, use) => {
    const browser = await launchVisibleBrowser();
    await use(browser);
    await browser.close();
  },
});

/** A seeded generator, so a failing run can be told apart from another by its seed in the log. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the page's own timers may run late by, past the grace period, while workers spin on both cores. */
const GRACE_SLACK_MS = 30;

test('jacobi over 3 tabs made visible, hidden and given input at random gives the no-migration result bit for bit', async ({ visible, api }) => {
  const program = readProgram('examples/jacobi.ts');
  const grid = { n: 96, iterations: 10_000 };
  // two hosts compute only while hidden, one also while visible and left alone
  const hosts = [
    ...(await openVisibleHosts(visible, api.baseUrl, 2, 'slots=1&policy=hidden')),
    ...(await openVisibleHosts(visible, api.baseUrl, 1, 'slots=1&policy=idle&idleMs=200')),
  ];
  const single = await api.submit({ name: 'jacobi-1', program, main: { ...grid, strips: 1 } });
  await api.waitForState(single, 'done');
  const [one] = (await api.results(single)) as { checksum: string }[];

  const id = await api.submit({ name: 'jacobi-3-moving', program, main: { ...grid, strips: 3 } });
  const seed = Date.now() % 100_000;
  test.info().annotations.push({ type: 'seed', description: String(seed) });
  const next = random(seed);
  await expect.poll(async () => (await api.job(id)).tasks.running, { timeout: 30_000 }).toBe(3);
  let reclaims = 0;
  // Enough reclaims for well over 20 migrations, then the job finishes undisturbed.
  while (reclaims < 32 && (await api.job(id)).state === 'running') {
    const host = hosts[Math.floor(next() * hosts.length)]!;
    await host.show();
    if (next() < 0.5 || host === hosts[2]) await host.page.mouse.move(10 + next() * 100, 10 + next() * 100);
    reclaims++;
    await sleep(50 + next() * 250);
    await host.hide();
    await sleep(next() * 200);
  }
  const job = await api.waitForState(id, 'done');
  const [three] = (await api.results(id)) as { checksum: string }[];
  expect(three!.checksum).toBe(one!.checksum);
  expect(job.migrations).toBeGreaterThanOrEqual(20);
  // every migration is recorded as an event, with its timings, and the hosts counted the same
  const { migrations } = (await (await api.request('GET', `/api/jobs/${id}/migrations`)).json()) as {
    migrations: { tid: string; reason: string; from: string; to: string | null; obtrusivenessMs: number; latencyMs: number | null }[];
  };
  expect(migrations).toHaveLength(job.migrations);
  expect(migrations.every((m) => m.to !== null && m.to !== m.from && m.latencyMs !== null)).toBe(true);
  expect(migrations.map((m) => m.reason)).toContain('hidden');
  expect(migrations.every((m) => m.reason === 'hidden' || m.reason === 'input')).toBe(true);
  const moved = await Promise.all(hosts.map(async (h) => (await h.snapshot()).migrations));
  expect(moved.reduce((n, m) => n + m.out, 0)).toBe(job.migrations);
  console.log(`jacobi: ${reclaims} reclaims, ${job.migrations} migrations, seed ${seed}`);
});

test('a token ring keeps its one token while its tasks, the holder among them, are moved with the token in flight', async ({ visible, api }) => {
  await openVisibleHosts(visible, api.baseUrl, 3, 'slots=1&policy=always');
  const tasks = 6;
  const rounds = 3000;
  const id = await api.submit({ name: 'ring', program: readProgram('examples/token-ring.ts'), main: { tasks, rounds } });
  await expect.poll(async () => (await api.job(id)).tasks.running, { timeout: 30_000 }).toBe(tasks);
  // Every task in turn, again and again: whichever holds the token, or is about to, moves with it in flight.
  const ordered = await api.migrateInTurn(id, Array.from({ length: tasks }, (_, i) => `${id}.${i}`), 8);
  const job = await api.waitForState(id, 'done');
  expect(await api.results(id)).toEqual([expect.objectContaining({ tasks, rounds, token: tasks * rounds })]);
  expect(ordered).toBeGreaterThanOrEqual(12);
  const { migrations } = (await (await api.request('GET', `/api/jobs/${id}/migrations`)).json()) as {
    migrations: { reason: string; tid: string; path: string }[];
  };
  expect(migrations.length).toBe(job.migrations);
  expect(migrations.length).toBeGreaterThanOrEqual(12);
  expect(migrations.every((m) => m.reason === 'order')).toBe(true);
  // ring neighbours on other tabs talk over data channels: images take those channels straight to the next host
  expect(migrations.filter((m) => m.path === 'channel').length).toBeGreaterThan(0);
});

test('input on a visible tab under policy=idle ends its workers within the grace period, and it offers its slots again after idleMs', async ({ visible, api }) => {
  // One spinning worker per tab: the page's own timers then compete with one busy thread per core, not two.
  const [idle, other] = [
    ...(await openVisibleHosts(visible, api.baseUrl, 1, 'slots=1&policy=idle&idleMs=1500')),
    ...(await openVisibleHosts(visible, api.baseUrl, 1, 'slots=1&policy=always')),
  ];
  const stubborn = readProgram('e2e/programs/stubborn.js');
  // Tasks that spin 100 ms between safe points: only the grace period can end their workers.
  const spin = (count: number) => Array.from({ length: count }, () => ({ steps: 40, spinMs: 100 }));
  const id = await api.submit({ name: 'spin', program: stubborn, inputs: spin(4) });
  await expect.poll(async () => (await idle!.snapshot()).running.length, { timeout: 30_000 }).toBe(1);
  const slotsOf = async () => ((await (await api.request('GET', '/api/hosts')).json()) as { hosts: { hostId: string; slots: number }[] }).hosts.find((h) => h.hostId === idle!.hostId)?.slots;

  // Input on the visible tab: paused, and says so; the coordinator stops assigning to it.
  await idle!.show();
  // a person looks at the tab before touching it: the page has drawn itself by then
  await sleep(300);
  await idle!.page.mouse.move(20, 20);
  await expect.poll(async () => (await idle!.snapshot()).paused).toBe(true);
  expect((await idle!.snapshot()).pauseReason).toBe('input');
  await expect(idle!.page.getByTestId('host-paused')).toContainText('Paused — your tasks moved to other volunteers');
  await expect.poll(slotsOf).toBe(0);
  await expect.poll(async () => (await idle!.snapshot()).workersAlive).toBe(0);

  // Left alone for idleMs, it offers its slot again and takes work.
  await expect.poll(async () => (await idle!.snapshot()).paused, { timeout: 10_000 }).toBe(false);
  await expect.poll(slotsOf).toBe(1);
  await expect(idle!.page.getByTestId('host-paused')).toHaveCount(0);
  const more = await api.submit({ name: 'spin-more', program: stubborn, inputs: spin(3) });
  await expect.poll(async () => (await idle!.snapshot()).running.length, { timeout: 30_000 }).toBe(1);
  expect((await other!.snapshot()).paused).toBe(false);

  // Input again, on a page whose reclaim path has run once: timed from the page's own state,
  // from the input event until it had no worker left.
  await idle!.page.mouse.move(60, 60);
  await expect.poll(async () => (await idle!.snapshot()).lastReclaim?.clearedMs ?? null).not.toBeNull();
  // the 20 ms grace period, and the page's event loop on a machine whose two cores the spinning workers share
  expect((await idle!.snapshot()).lastReclaim!.clearedMs!).toBeLessThanOrEqual(20 + GRACE_SLACK_MS);
  expect((await idle!.snapshot()).workersAlive).toBe(0);

  await idle!.hide();
  await api.waitForState(more, 'done');
  await api.waitForState(id, 'done');
  const results = (await api.results(id)) as { step: number; acc: number }[];
  expect(new Set(results.map((r) => JSON.stringify(r))).size).toBe(1);
  expect(results[0]!.step).toBe(40);
});

test('a task that ignores freeze is terminated and resumes from its last checkpoint elsewhere, with the right result', async ({ visible, api }) => {
  const hosts = await openVisibleHosts(visible, api.baseUrl, 2, 'slots=1&policy=hidden');
  const program = readProgram('e2e/programs/stubborn.js');
  // Steps of 250 ms (each reports its progress), then one of 4 s with no safe point in it.
  const input = { steps: 10, spinMs: 250, long: { at: 5, ms: 4000 } };
  const id = await api.submit({ name: 'stubborn', program, inputs: [input] });
  let holder: (typeof hosts)[number] | undefined;
  await expect
    .poll(
      async () => {
        for (const h of hosts) if ((await h.snapshot()).running.some((t) => t.progress >= 0.5)) holder = h;
        return holder !== undefined;
      },
      { timeout: 30_000, intervals: [50] },
    )
    .toBe(true);
  // it is in the long spin now: the tab is shown (reclaimed) seconds before the spin ends
  await holder!.show();
  await expect.poll(async () => (await holder!.snapshot()).lastReclaim?.clearedMs ?? null).not.toBeNull();
  expect((await holder!.snapshot()).lastReclaim!.clearedMs!).toBeLessThan(1000);
  await api.waitForState(id, 'done');
  const [result] = (await api.results(id)) as { step: number; acc: number }[];
  let expected = { step: 0, acc: 1 };
  while (expected.step < input.steps) expected = { step: expected.step + 1, acc: (expected.acc * 31 + expected.step) % 1000003 };
  expect(result).toEqual(expected);
  const job = await api.job(id);
  expect(job.migrations).toBe(1);
  // terminated past the grace period, not frozen at a safe point: it replayed from its last checkpoint
  const { migrations } = (await (await api.request('GET', `/api/jobs/${id}/migrations`)).json()) as { migrations: { frozen: boolean; obtrusivenessMs: number }[] };
  expect(migrations).toEqual([expect.objectContaining({ frozen: false })]);
  expect(migrations[0]!.obtrusivenessMs).toBeGreaterThanOrEqual(20);
});

test('closing a tab evacuates its tasks with nothing lost, their senders sending again what they had read on lanes', async ({ visible, api }) => {
  const hosts = await openVisibleHosts(visible, api.baseUrl, 3, 'slots=1&policy=always');
  const id = await api.submit({ name: 'ring', program: readProgram('examples/token-ring.ts'), main: { tasks: 9, rounds: 600 } });
  await expect.poll(async () => (await api.job(id)).tasks.running, { timeout: 30_000 }).toBe(9);
  await new Promise((r) => setTimeout(r, 1500));
  const counts = await Promise.all(hosts.map(async (h) => (await h.snapshot()).running.length));
  const leaving = hosts[counts.indexOf(Math.max(...counts))]!;
  const running = (await leaving.snapshot()).running.length;
  expect(running).toBeGreaterThan(0);
  await leaving.page.close({ runBeforeUnload: true });
  const job = await api.waitForState(id, 'done');
  expect(await api.results(id)).toEqual([expect.objectContaining({ tasks: 9, rounds: 600, token: 5400 })]);
  expect(job.migrations).toBeGreaterThanOrEqual(running);
  // Ended without a safe point, its tasks left with their last checkpoints, naming the tokens they
  // had read on lanes since; the tabs they went to had their senders send those again.
  const arrived = await Promise.all(hosts.filter((h) => h !== leaving).map(async (h) => (await h.snapshot()).migrations));
  expect(arrived.reduce((n, m) => n + m.refilled, 0)).toBeGreaterThan(0);
});
