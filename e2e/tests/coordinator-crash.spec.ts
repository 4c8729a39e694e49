import { readProgram } from '../support/api.ts';
import type { CoordinatorProcess } from '../support/coordinator.ts';
import { expect, test } from '../support/fixtures.ts';
import { type HostTab, openHosts } from '../support/hosts.ts';

/**
 * The coordinator is killed (SIGKILL) in the middle of a message-passing job and started again on
 * the same data: its hosts reconnect and keep their tasks, what it had answered (spawned tids,
 * barrier calls) it still knows, what it held for tasks comes again from the senders' logs, and
 * the job finishes exactly, each task counted once.
 */
async function killAndRestart(coordinator: CoordinatorProcess, tabs: HostTab[]): Promise<void> {
  await coordinator.kill();
  await expect.poll(async () => (await tabs[0]!.snapshot()).connection).not.toBe('connected');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await coordinator.launch();
}

test('a coordinator killed mid token ring restarts and the ring ends with its one token', async ({ browser, api, coordinator }) => {
  const tabs = await openHosts(browser, api.baseUrl, 3, 1);
  const tasks = 5;
  const rounds = 2000;
  const id = await api.submit({ name: 'ring', program: readProgram('examples/token-ring.ts'), main: { tasks, rounds } });
  await expect.poll(async () => (await api.job(id)).progress, { timeout: 60_000 }).toBeGreaterThan(0.05);
  await killAndRestart(coordinator, tabs);
  const job = await api.waitForState(id, 'done', 120_000);
  expect(await api.results(id)).toEqual([expect.objectContaining({ tasks, rounds, token: tasks * rounds })]);
  expect(job.tasks).toMatchObject({ total: tasks, failed: 0, running: 0, pending: 0 });
});

test('a coordinator killed mid spawn restarts, and no child is spawned twice or forgotten', async ({ browser, api, coordinator }) => {
  const tabs = await openHosts(browser, api.baseUrl, 2, 1);
  const waves = 40;
  const id = await api.submit({ name: 'waves', program: readProgram('e2e/programs/spawn-waves.js'), main: { waves, gapMs: 100 } });
  await expect.poll(async () => (await api.job(id)).tasks.total, { timeout: 60_000 }).toBeGreaterThan(10);
  await killAndRestart(coordinator, tabs);
  const job = await api.waitForState(id, 'done', 120_000);
  const squares = Array.from({ length: waves }, (_, w) => w * w).reduce((a, b) => a + b, 0);
  expect(await api.results(id)).toEqual([{ waves, sum: squares }]);
  expect(job.tasks).toMatchObject({ total: waves + 1, failed: 0 });
});

test('a coordinator killed mid barrier restarts, and every barrier counts each task once', async ({ browser, api, coordinator }) => {
  const tabs = await openHosts(browser, api.baseUrl, 2, 1);
  const members = 3;
  const rounds = 400;
  const id = await api.submit({ name: 'barriers', program: readProgram('e2e/programs/barrier-rounds.js'), main: { members, rounds } });
  await expect.poll(async () => (await api.job(id)).tasks.running, { timeout: 30_000 }).toBe(members + 1);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  expect((await api.job(id)).state).toBe('running');
  await killAndRestart(coordinator, tabs);
  const job = await api.waitForState(id, 'done', 120_000);
  const perMember = (rounds * (rounds - 1)) / 2;
  expect(await api.results(id)).toEqual([{ rounds, members, total: members * perMember }]);
  expect(job.tasks).toMatchObject({ total: members + 1, failed: 0 });
});

test('a coordinator killed while tasks of a jacobi job migrate restarts, and the job equals the single-task run', async ({ browser, api, coordinator }) => {
  const program = readProgram('examples/jacobi.ts');
  const grid = { n: 96, iterations: 6000 };
  const tabs = await openHosts(browser, api.baseUrl, 3, 1);
  const single = await api.submit({ name: 'jacobi-1', program, main: { ...grid, strips: 1 } });
  await api.waitForState(single, 'done', 120_000);
  const id = await api.submit({ name: 'jacobi-3', program, main: { ...grid, strips: 3 } });
  await expect.poll(async () => (await api.job(id)).tasks.running, { timeout: 30_000 }).toBe(3);
  const tids = [0, 1, 2].map((i) => `${id}.${i}`);
  // Orders keep coming as the coordinator dies: some tasks are between their event and their new host.
  const ordering = api.migrateInTurn(id, tids, 8, 20).catch(() => 0);
  await expect.poll(async () => (await api.job(id)).migrations, { timeout: 30_000, intervals: [50] }).toBeGreaterThanOrEqual(2);
  await killAndRestart(coordinator, tabs);
  await ordering;
  const job = await api.waitForState(id, 'done', 120_000);
  const [one] = (await api.results(single)) as { checksum: string }[];
  const [three] = (await api.results(id)) as { checksum: string }[];
  expect(three!.checksum).toBe(one!.checksum);
  expect(job.tasks).toMatchObject({ total: 3, failed: 0 });
  expect(job.migrations).toBeGreaterThanOrEqual(1);
});
