import { readProgram } from '../support/api.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHost, openHosts } from '../support/hosts.ts';
import { type KillableBrowser, launchKillableBrowser } from '../support/killable-browser.ts';

/**
 * A volunteer's whole browser dies without a word (SIGKILL to its process group) while it holds
 * tasks of a message-passing job: they restart elsewhere from their checkpoints kept on the
 * coordinator, get again what was sent them since from their senders' logs, and the job's result
 * is the one a run without the crash gives, bit for bit.
 */
let victim: KillableBrowser | null = null;
test.afterEach(async () => {
  await victim?.close();
  victim = null;
});

test('jacobi with a strip in a browser killed mid-run, its Float64Array checkpoints kept off the tab, equals the single-task run', async ({ browser, api }) => {
  const program = readProgram('examples/jacobi.ts');
  const grid = { n: 96, iterations: 8000 };
  const single = await api.submit({ name: 'jacobi-1', program, main: { ...grid, strips: 1 } });
  const survivors = await openHosts(browser, api.baseUrl, 2, 1);
  await api.waitForState(single, 'done', 180_000);
  victim = await launchKillableBrowser();
  const doomed = await openHost(victim.browser, api.baseUrl, 1);
  const split = await api.submit({ name: 'jacobi-3', program, main: { ...grid, strips: 3 } });
  // One strip to a host: the doomed browser's strip has neighbours that live on, far past its first checkpoint.
  await expect.poll(async () => (await api.job(split)).tasks.running, { timeout: 30_000 }).toBe(3);
  const lost = (await doomed.snapshot()).running.map((r) => r.tid);
  expect(lost).toHaveLength(1);
  await expect.poll(async () => (await api.job(split)).progress, { timeout: 60_000 }).toBeGreaterThan(0.25);
  victim.kill();

  const job = await api.waitForState(split, 'done', 180_000);
  const [one] = (await api.results(single)) as { checksum: string }[];
  const [three] = (await api.results(split)) as { checksum: string }[];
  expect(three!.checksum).toBe(one!.checksum);
  // each strip counted once, none failed; only the doomed browser's strip ran twice
  expect(job.tasks).toMatchObject({ total: 3, failed: 0, running: 0, pending: 0 });
  const attempts = new Map((await api.tasks(split)).map((t) => [t.tid, t.attempt]));
  for (const [tid, attempt] of attempts) expect(attempt, tid).toBe(lost.includes(tid) ? 2 : 1);
  expect((await Promise.all(survivors.map((s) => s.snapshot()))).reduce((n, s) => n + s.done, 0)).toBeGreaterThanOrEqual(2);
});

test('jacobi whose strips all ran in a browser killed mid-run starts them again elsewhere and equals the single-task run', async ({ browser, api }) => {
  const program = readProgram('examples/jacobi.ts');
  const grid = { n: 96, iterations: 6000 };
  victim = await launchKillableBrowser();
  const doomed = await openHost(victim.browser, api.baseUrl, 1);
  const split = await api.submit({ name: 'jacobi-3', program, main: { ...grid, strips: 3 } });
  // Every strip runs in the doomed browser: each one's halos, and the sender logs that hold them, die with it.
  await expect.poll(async () => (await doomed.snapshot()).running.length, { timeout: 30_000 }).toBe(3);
  await expect.poll(async () => (await api.job(split)).progress, { timeout: 60_000 }).toBeGreaterThan(0.15);
  await openHosts(browser, api.baseUrl, 2, 1);
  victim.kill();

  const job = await api.waitForState(split, 'done', 180_000);
  const single = await api.submit({ name: 'jacobi-1', program, main: { ...grid, strips: 1 } });
  await api.waitForState(single, 'done', 180_000);
  const [one] = (await api.results(single)) as { checksum: string }[];
  const [three] = (await api.results(split)) as { checksum: string }[];
  expect(three!.checksum).toBe(one!.checksum);
  expect(job.tasks).toMatchObject({ total: 3, failed: 0, running: 0, pending: 0 });
  // each lost once, with the browser: started again elsewhere, not from a fault after
  expect((await api.tasks(split)).map((t) => t.attempt)).toEqual([2, 2, 2]);
});

test('a token ring keeps its one token when a browser holding ring members, the holder among them, is killed', async ({ browser, api }) => {
  const tasks = 6;
  const rounds = 3000;
  await openHosts(browser, api.baseUrl, 2, 1);
  victim = await launchKillableBrowser();
  const doomed = await openHost(victim.browser, api.baseUrl, 1);
  const id = await api.submit({ name: 'ring', program: readProgram('examples/token-ring.ts'), main: { tasks, rounds } });
  await expect.poll(async () => (await api.job(id)).tasks.running, { timeout: 30_000 }).toBe(tasks);
  const lost = (await doomed.snapshot()).running.map((r) => r.tid);
  // the token goes round every few milliseconds: with tasks in the doomed browser, it passes through it all the time
  expect(lost.length).toBeGreaterThanOrEqual(1);
  await expect.poll(async () => (await api.job(id)).progress, { timeout: 60_000 }).toBeGreaterThan(0.1);
  victim.kill();

  const job = await api.waitForState(id, 'done', 180_000);
  expect(await api.results(id)).toEqual([expect.objectContaining({ tasks, rounds, token: tasks * rounds })]);
  expect(job.tasks).toMatchObject({ total: tasks, failed: 0, running: 0, pending: 0 });
  const attempts = new Map((await api.tasks(id)).map((t) => [t.tid, t.attempt]));
  for (const tid of lost) expect(attempts.get(tid)).toBe(2);
});

/** What big-state-ring.js returns: per task in ring order (the root last), its array's sum and weighted sum. */
function ringSums(tasks: number, rounds: number): { sum: number; weighted: number }[] {
  return Array.from({ length: tasks }, (_, i) => {
    // the root (position `tasks`) receives round * tasks + tasks, member m receives round * tasks + m
    const position = i === 0 ? tasks : i;
    let sum = 0;
    let weighted = 0;
    for (let round = 0; round < rounds; round++) {
      sum += round * tasks + position;
      weighted += (round * tasks + position) * (round + 1);
    }
    return { sum, weighted };
  });
}

test.describe('with checkpoints every second, as by default', () => {
  // the e2e default of 100 ms would have each task copy its 19 MB state ten times a second
  test.use({ coordinatorEnv: { WEBPVM_CHECKPOINT_INTERVAL_MS: '1000' } });

  test('a task whose checkpoints are too large for the coordinator restarts from the copy another volunteer’s tab kept, when its browser is killed', async ({ browser, api }) => {
    const tasks = 3;
    const rounds = 2000;
    // 19.2 MB of Float64Array: over the 16 MiB the coordinator keeps itself
    const doubles = 2_400_000;
    const survivors = await openHosts(browser, api.baseUrl, 2, 1);
    victim = await launchKillableBrowser();
    const doomed = await openHost(victim.browser, api.baseUrl, 1);
    const id = await api.submit({ name: 'big-ring', program: readProgram('e2e/programs/big-state-ring.js'), main: { tasks, rounds, doubles, pauseMs: 5 } });
    await expect.poll(async () => (await api.job(id)).tasks.running, { timeout: 30_000 }).toBe(tasks);
    const lost = (await doomed.snapshot()).running.map((r) => r.tid);
    expect(lost).toHaveLength(1);
    const survivorHosts = await Promise.all(survivors.map(async (s) => (await s.snapshot()).hostId));
    // its image went to a tab of the other browser, and is its restart point
    const keptBySurvivor = async () => {
      const task = (await api.tasks(id)).find((t) => t.tid === lost[0]);
      return task?.restartFrom === 'kept' && survivorHosts.includes(task.keptBy) ? 'kept by a survivor' : `${task?.restartFrom} by ${task?.keptBy}`;
    };
    await expect.poll(keptBySurvivor, { timeout: 60_000 }).toBe('kept by a survivor');
    expect((await api.job(id)).state).toBe('running');
    victim.kill();

    const job = await api.waitForState(id, 'done', 180_000);
    expect(await api.results(id)).toEqual([{ tasks, rounds, sums: ringSums(tasks, rounds) }]);
    expect(job.tasks).toMatchObject({ total: tasks, failed: 0, running: 0, pending: 0 });
    const attempts = new Map((await api.tasks(id)).map((t) => [t.tid, t.attempt]));
    expect(attempts.get(lost[0]!)).toBe(2);
  });
});
