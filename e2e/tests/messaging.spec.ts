import { readProgram } from '../support/api.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';
import { totalCounters } from '../support/snapshots.ts';

test('a token ring of 30 tasks over 3 tabs passes the token every round, over data channels', async ({ browser, api }) => {
  const tabs = await openHosts(browser, api.baseUrl, 3, 1);
  const id = await api.submit({ name: 'ring', program: readProgram('examples/token-ring.ts'), main: { tasks: 30, rounds: 3 } });
  const job = await api.waitForState(id, 'done');
  expect(await api.results(id)).toEqual([expect.objectContaining({ tasks: 30, rounds: 3, token: 90 })]);
  expect(job.tasks.total).toBe(30);

  // the counters come from the hosts themselves: messages between tabs went over data channels
  const counters = await totalCounters(tabs);
  expect(counters.channelOut).toBeGreaterThan(0);
  expect(counters.channelIn).toBe(counters.channelOut);
  const perTab = await Promise.all(tabs.map(async (t) => (await t.snapshot()).done));
  expect(perTab.filter((n) => n > 0)).toHaveLength(3);
});

test('jacobi over 3 tabs equals the single-task run bit for bit, on data channels and on the relay', async ({ browser, api }) => {
  const program = readProgram('examples/jacobi.ts');
  const grid = { n: 96, iterations: 200 };
  const p2pTabs = await openHosts(browser, api.baseUrl, 3, 1);
  const single = await api.submit({ name: 'jacobi-1', program, main: { ...grid, strips: 1 } });
  const split = await api.submit({ name: 'jacobi-3', program, main: { ...grid, strips: 3 } });
  await api.waitForState(single, 'done');
  await api.waitForState(split, 'done');
  const [one] = (await api.results(single)) as { checksum: string }[];
  const [three] = (await api.results(split)) as { checksum: string }[];
  expect(three!.checksum).toBe(one!.checksum);
  // once a pair has sent over a page's channel, its halos go worker to worker on a lane of their own
  const p2p = await totalCounters(p2pTabs);
  expect(p2p.laneOut).toBeGreaterThan(0);
  expect(p2p.channelOut).toBeGreaterThan(p2p.laneOut);
  expect(p2p.channelIn).toBe(p2p.channelOut);
  for (const tab of p2pTabs) await tab.close();

  // the same with data channels forced off: everything between tabs goes through the coordinator
  const relayTabs = await openHosts(browser, api.baseUrl, 3, 1, '&p2p=off');
  const relayed = await api.submit({ name: 'jacobi-3-relay', program, main: { ...grid, strips: 3 } });
  await api.waitForState(relayed, 'done');
  const [viaRelay] = (await api.results(relayed)) as { checksum: string }[];
  expect(viaRelay!.checksum).toBe(one!.checksum);
  const counters = await totalCounters(relayTabs);
  expect(counters.channelOut).toBe(0);
  expect(counters.channelsOpen).toBe(0);
  expect(counters.relayOut).toBeGreaterThan(0);
  // after a pair's first messages, its workers write to each other on a relay lane
  expect(counters.relayLaneOut).toBeGreaterThan(0);
  expect(counters.relayLaneOut).toBeLessThan(counters.relayOut);
  expect(counters.relayIn).toBe(counters.relayOut);

  const tasks = (await (await api.request('GET', `/api/jobs/${relayed}/tasks`)).json()) as {
    tasks: { tid: string; hostId: string | null; messagesIn: number; messagesOut: number }[];
  };
  // the root computes the first strip and spawns one task per other strip
  expect(tasks.tasks).toHaveLength(3);
  expect(tasks.tasks.every((t) => t.messagesOut > 0 && t.messagesIn > 0)).toBe(true);
  expect(new Set(tasks.tasks.map((t) => t.hostId)).size).toBe(3);
});

test('group barrier and broadcast work across tabs', async ({ browser, api }) => {
  await openHosts(browser, api.baseUrl, 3, 1);
  const id = await api.submit({ name: 'groups', program: readProgram('e2e/programs/groups.js'), main: { members: 5, secret: 42 } });
  await api.waitForState(id, 'done');
  const [result] = (await api.results(id)) as { rootInstance: number; size: number; answers: { instance: number; secret: number }[] }[];
  expect(result!.size).toBe(6);
  expect(result!.answers).toHaveLength(5);
  expect(result!.answers.every((a) => a.secret === 42)).toBe(true);
  const instances = [result!.rootInstance, ...result!.answers.map((a) => a.instance)].sort((a, b) => a - b);
  expect(instances).toEqual([0, 1, 2, 3, 4, 5]);
});

test('notifyExit delivers exactly one message per ended task, after its own messages', async ({ browser, api }) => {
  await openHosts(browser, api.baseUrl, 2, 1);
  const id = await api.submit({
    name: 'notify',
    program: readProgram('e2e/programs/notify.js'),
    main: { children: [false, false, true, false] },
    maxAttempts: 1,
  });
  await api.waitForState(id, 'done');
  const [result] = (await api.results(id)) as {
    tids: string[];
    exits: { from: string; tid: string; ok: boolean; saidBefore: boolean }[];
    extra: unknown;
  }[];
  expect(result!.exits.map((e) => e.tid)).toEqual(result!.tids);
  expect(result!.exits.map((e) => e.ok)).toEqual([true, true, false, true]);
  expect(result!.exits.every((e) => e.from === e.tid && e.saidBefore)).toBe(true);
  expect(result!.extra).toBeNull();
});

test('a task sending to a tid of another job gets an error and nothing is delivered', async ({ browser, api }) => {
  await openHosts(browser, api.baseUrl, 2, 1);
  const program = readProgram('e2e/programs/cross-job.js');
  const victim = await api.submit({ name: 'victim', program, main: { role: 'victim', waitMs: 3000 } });
  const intruder = await api.submit({ name: 'intruder', program, main: { role: 'intruder', target: `${victim}.0` } });
  await api.waitForState(intruder, 'done');
  expect(await api.results(intruder)).toEqual([{ sent: false, code: 'E_FORBIDDEN', message: expect.stringContaining(victim) }]);
  await api.waitForState(victim, 'done');
  expect(await api.results(victim)).toEqual([{ received: null }]);
});

test('a 64 MiB message crosses a data channel whole', async ({ browser, api }) => {
  const tabs = await openHosts(browser, api.baseUrl, 2, 1);
  const bytes = 64 * 1024 * 1024;
  const id = await api.submit({ name: 'big', program: readProgram('e2e/programs/big-message.js'), main: { bytes } });
  await api.waitForState(id, 'done');
  expect(await api.results(id)).toEqual([{ bytes, same: true, digestMatches: true }]);
  const counters = await totalCounters(tabs);
  // 20 pings, 20 pongs, the big message and its answer; once open, the channel carries every later
  // message, so the last two (the big one and its answer) went over it
  expect(counters.channelOut + counters.relayOut).toBe(42);
  expect(counters.channelOut).toBeGreaterThanOrEqual(2);
  expect(counters.resentAfterBreak).toBe(0);
});

test('with data channels off, a token ring moved task by task with the token in flight keeps its one token over relay lanes', async ({ browser, api }) => {
  const tabs = await openHosts(browser, api.baseUrl, 3, 1, '&p2p=off');
  const tasks = 6;
  const rounds = 2000;
  const id = await api.submit({ name: 'ring-relay', program: readProgram('examples/token-ring.ts'), main: { tasks, rounds } });
  await expect.poll(async () => (await api.job(id)).tasks.running, { timeout: 30_000 }).toBe(tasks);
  const ordered = await api.migrateInTurn(id, Array.from({ length: tasks }, (_, i) => `${id}.${i}`), 4);
  const job = await api.waitForState(id, 'done');
  expect(await api.results(id)).toEqual([expect.objectContaining({ tasks, rounds, token: tasks * rounds })]);
  expect(ordered).toBeGreaterThanOrEqual(6);
  expect(job.migrations).toBeGreaterThanOrEqual(6);
  // workers wrote to each other through the coordinator, and lanes closed and opened again as tasks moved
  const counters = await totalCounters(tabs);
  expect(counters.channelOut).toBe(0);
  expect(counters.relayLaneOut).toBeGreaterThan(0);
  expect(counters.relayLaneOut).toBeLessThan(counters.relayOut);
});
