import { LIMITS, SAFE_POINT_FLAGS, encodeEnvelope, encodeMessage, type SealedMessage, type TaskOutcome, type TaskRef, type ToWorker } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SlotPool, type LeftTask } from '../src/host/slot-pool.ts';
import { assignment } from './support/assignments.ts';
import { type FakeWorker, currentTid, fakeWorkers, startsOf } from './support/fake-workers.ts';

function setup(slots: number, sharedFlags = false, now?: () => number) {
  const { spawn, workers } = fakeWorkers(sharedFlags);
  const outcomes: TaskOutcome[] = [];
  const logs: string[] = [];
  const sends: [TaskRef, SealedMessage][] = [];
  const laneSends: [TaskRef, Pick<SealedMessage, 'from' | 'to' | 'seq'>][] = [];
  const started: string[] = [];
  const left: LeftTask[] = [];
  const givenBack: string[] = [];
  const pool = new SlotPool({
    slots,
    spawn,
    checkpointIntervalMs: () => 250,
    ...(now ? { now } : {}),
    events: {
      outcome: (o) => outcomes.push(o),
      checkpoint: () => undefined,
      left: (task) => left.push(task),
      givenBack: (refs) => givenBack.push(...refs.map((r) => r.tid)),
      progress: () => undefined,
      log: (_ref, line) => logs.push(line),
      started: (ref) => started.push(ref.tid),
      send: (ref, message) => sends.push([ref, message]),
      laneWrote: () => undefined,
      resent: () => undefined,
      endedLog: () => undefined,
      logFull: () => undefined,
      laneSent: (ref, message) => laneSends.push([ref, message]),
      laneClosed: () => undefined,
      delivered: () => undefined,
      request: () => undefined,
      change: () => undefined,
    },
  });
  return { pool, workers, outcomes, logs, sends, laneSends, started, left, givenBack };
}

afterEach(() => vi.useRealTimers());

describe('SlotPool', () => {
  it('runs at most `slots` tasks, one per worker, and queues the rest', () => {
    const { pool, workers, outcomes } = setup(2);
    pool.assign([assignment('joba', 0), assignment('joba', 1), assignment('joba', 2)]);
    expect(workers).toHaveLength(2);
    expect(pool.running().map((t) => t.tid)).toEqual(['joba.0', 'joba.1']);
    expect(pool.queued).toBe(1);
    expect(workers[0]!.received[0]).toMatchObject({ type: 'starts', tasks: [{ type: 'start', checkpointIntervalMs: 250, task: { tid: 'joba.0' } }] });

    workers[0]!.emit({ type: 'done', tid: 'joba.0', ok: true, value: 42 });
    expect(outcomes).toEqual([{ tid: 'joba.0', attempt: 1, ok: true, value: 42 }]);
    // The same job reuses the worker that already loaded its program.
    expect(workers).toHaveLength(2);
    expect(currentTid(workers[0]!)).toBe('joba.2');
    expect(pool.held().map((r) => r.tid).sort()).toEqual(['joba.1', 'joba.2']);
  });

  it('gives a task of another job a fresh worker and terminates the old one', () => {
    const { pool, workers } = setup(1);
    pool.assign([assignment('joba', 0), assignment('jobb', 0)]);
    workers[0]!.emit({ type: 'done', tid: 'joba.0', ok: true, value: 1 });
    expect(workers).toHaveLength(2);
    expect(workers[0]!.terminated).toBe(true);
    expect(currentTid(workers[1]!)).toBe('jobb.0');
    expect(pool.workersStarted).toBe(2);
  });

  it('fails a task whose worker sends a malformed message, and drops that worker', () => {
    const { pool, workers, outcomes } = setup(1);
    pool.assign([assignment('joba', 0), assignment('joba', 1)]);
    workers[0]!.emit({ type: 'progress', tid: 'joba.0', fraction: 7 });
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ tid: 'joba.0', ok: false, error: { code: 'E_BAD_FRAME' } });
    expect(workers[0]!.terminated).toBe(true);
    expect(currentTid(workers[1]!)).toBe('joba.1');
  });

  it('fails a task with E_TASK_FAILED when its worker crashes', () => {
    const { pool, workers, outcomes } = setup(1);
    pool.assign([assignment('joba', 0)]);
    workers[0]!.listener.error('E_TASK_FAILED', 'Uncaught ReferenceError: x is not defined');
    expect(outcomes).toEqual([
      { tid: 'joba.0', attempt: 1, ok: false, error: { code: 'E_TASK_FAILED', message: 'Uncaught ReferenceError: x is not defined' } },
    ]);
    expect(workers[0]!.terminated).toBe(true);
    expect(pool.running()).toEqual([]);
  });

  it('ignores messages about another tid, such as a finished task’s leftover timers', () => {
    const { pool, workers, outcomes, logs } = setup(1);
    pool.assign([assignment('joba', 0)]);
    workers[0]!.emit({ type: 'log', tid: 'joba.9', line: 'stale' });
    workers[0]!.emit({ type: 'log', tid: 'joba.0', line: 'hello' });
    expect(logs).toEqual(['hello']);
    expect(outcomes).toEqual([]);
  });

  it('drops queued tasks and terminates running ones on cancel, reporting nothing', () => {
    const { pool, workers, outcomes } = setup(1);
    pool.assign([assignment('joba', 0), assignment('joba', 1), assignment('joba', 2)]);
    pool.cancel([
      { tid: 'joba.0', attempt: 1 },
      { tid: 'joba.1', attempt: 1 },
    ]);
    expect(workers[0]!.terminated).toBe(true);
    expect(outcomes).toEqual([]);
    expect(pool.running().map((t) => t.tid)).toEqual(['joba.2']);
    expect(pool.queued).toBe(0);
    workers[0]!.emit({ type: 'done', tid: 'joba.0', ok: true, value: 1 });
    expect(outcomes).toEqual([]);
  });

  it('ignores an assignment it already holds', () => {
    const { pool, workers } = setup(2);
    pool.assign([assignment('joba', 0)]);
    pool.assign([assignment('joba', 0)]);
    expect(workers).toHaveLength(1);
    expect(pool.held()).toHaveLength(1);
  });

  it('fails a task that outlives its deadline', () => {
    vi.useFakeTimers();
    const { pool, workers, outcomes } = setup(1);
    pool.assign([assignment('joba', 0, { timeoutMs: 1000 })]);
    vi.advanceTimersByTime(1001);
    expect(outcomes[0]).toMatchObject({ tid: 'joba.0', ok: false, error: { code: 'E_TASK_TIMEOUT' } });
    expect(workers[0]!.terminated).toBe(true);
  });

  it('tracks progress for the page', () => {
    const { pool, workers } = setup(1);
    pool.assign([assignment('joba', 0)]);
    workers[0]!.emit({ type: 'progress', tid: 'joba.0', fraction: 0.5 });
    expect(pool.running()).toEqual([{ tid: 'joba.0', attempt: 1, progress: 0.5 }]);
  });

  it('starts spawned tasks at once, past its slots, and ends their workers with them', () => {
    const { pool, workers, started } = setup(1);
    pool.assign([assignment('joba', 0), assignment('joba', 20)]);
    const spawned = Array.from({ length: 10 }, (_, i) => assignment('joba', i + 1, { parent: 'joba.0' }));
    pool.assign(spawned);
    expect(pool.running()).toHaveLength(11);
    expect(pool.queued).toBe(1);
    expect(started).toEqual(['joba.0', ...spawned.map((t) => t.tid)]);
    expect(pool.holds('joba.20') && pool.holds('joba.5')).toBe(true);

    workers[3]!.emit({ type: 'done', tid: 'joba.3', ok: true, value: 3 });
    expect(workers[3]!.terminated).toBe(true);
    expect(pool.holds('joba.3')).toBe(false);
    // a spawned task's slot does not serve the queue: the root still holds the only slot
    expect(pool.queued).toBe(1);
    workers[0]!.emit({ type: 'done', tid: 'joba.0', ok: true, value: 0 });
    expect(currentTid(workers[0]!)).toBe('joba.20');
  });

  it('starts no more workers for spawned tasks than LIMITS.spawnedPerHost: one past them waits for a slot', () => {
    const { pool, workers } = setup(1);
    const spawned = Array.from({ length: LIMITS.spawnedPerHost + 1 }, (_, i) => assignment('joba', i + 1, { parent: 'joba.0' }));
    pool.assign(spawned);
    expect(workers).toHaveLength(LIMITS.spawnedPerHost + 1);
    expect(pool.running()).toHaveLength(LIMITS.spawnedPerHost + 1);
    const fresh = assignment('joba', 100, { parent: 'joba.0' });
    pool.assign([fresh]);
    // the one slot took the last of the batch; the next waits
    expect(workers).toHaveLength(LIMITS.spawnedPerHost + 1);
    expect(pool.queued).toBe(1);
    const inSlot = workers.find((w) => !w.terminated && currentTid(w) === spawned.at(-1)!.tid)!;
    inSlot.emit({ type: 'done', tid: spawned.at(-1)!.tid, ok: true, value: 0 });
    expect(pool.queued).toBe(0);
    expect(pool.holds(fresh.tid)).toBe(true);
  });

  it('posts to the worker of a running task only', () => {
    const { pool, workers } = setup(1);
    pool.assign([assignment('joba', 0), assignment('joba', 1)]);
    const deliver: ToWorker = { type: 'deliver', tid: 'joba.0', envelopes: [] };
    expect(pool.post('joba.0', deliver)).toBe(true);
    expect(pool.post('joba.1', { ...deliver, tid: 'joba.1' })).toBe(false);
    expect(workers[0]!.received.at(-1)).toEqual(deliver);
    expect(pool.refOf('joba.1')).toEqual({ tid: 'joba.1', attempt: 1 });
    expect(pool.refOf('joba.7')).toBeNull();
  });

  it('passes on what a task sends as the envelope it sent, and fails a task that sends as another or to another job', () => {
    const { pool, workers, sends, outcomes } = setup(2);
    pool.assign([assignment('joba', 0), assignment('joba', 1)]);
    const message = { from: 'joba.0', to: 'joba.5', tag: 2, seq: 1 };
    const envelope = encodeMessage({ ...message, data: [1] });
    workers[0]!.emit({ type: 'send', tid: 'joba.0', envelope });
    expect(sends).toEqual([[{ tid: 'joba.0', attempt: 1 }, { ...message, envelope }]]);
    workers[0]!.emit({ type: 'send', tid: 'joba.0', envelope: encodeMessage({ ...message, from: 'joba.1', data: [1] }) });
    workers[1]!.emit({ type: 'send', tid: 'joba.1', envelope: encodeMessage({ ...message, from: 'joba.1', to: 'jobb.1', data: [1] }) });
    expect(outcomes.map((o) => [o.tid, !o.ok && o.error.code])).toEqual([
      ['joba.0', 'E_FORBIDDEN'],
      ['joba.1', 'E_FORBIDDEN'],
    ]);
  });

  it('fails a task that sends what is not a message: an acknowledgement, data that does not decode, seq 0', () => {
    const { pool, workers, sends, outcomes } = setup(3);
    pool.assign([assignment('joba', 0), assignment('joba', 1), assignment('joba', 2)]);
    workers[0]!.emit({ type: 'send', tid: 'joba.0', envelope: encodeEnvelope({ type: 'ack', of: 'joba.0', by: 'joba.5', seq: 1 }) });
    const missingSegment = encodeEnvelope({ type: 'msg', from: 'joba.1', to: 'joba.5', tag: 2, seq: 1, data: { $wpvm: 'Uint8Array', b: 0 }, sizes: [] });
    workers[1]!.emit({ type: 'send', tid: 'joba.1', envelope: missingSegment });
    workers[2]!.emit({ type: 'send', tid: 'joba.2', envelope: encodeMessage({ from: 'joba.2', to: 'joba.5', tag: 2, seq: 0, data: 1 }) });
    expect(sends).toEqual([]);
    expect(outcomes.map((o) => [o.tid, !o.ok && o.error.code])).toEqual([
      ['joba.0', 'E_BAD_FRAME'],
      ['joba.1', 'E_BAD_FRAME'],
      ['joba.2', 'E_BAD_FRAME'],
    ]);
    expect(outcomes.map((o) => !o.ok && o.error.message)).toEqual([
      expect.stringContaining('not a task message'),
      expect.stringContaining('missing byte segment'),
      expect.stringContaining('seq is not a count from 1'),
    ]);
  });
});

describe('SlotPool evacuation', () => {
  const frozen = (tid: string) => ({
    type: 'checkpoint',
    tid,
    frozen: true,
    checkpoint: { state: { i: 9 }, rng: [1, 2, 3, 4], sent: [], requests: 0 },
    stateBuffers: [],
    received: 2,
    unread: [2],
    unreadLane: [],
    delivered: [],
    log: [],
  });

  it('asks a running task to freeze and lets it leave with the checkpoint it froze at, its worker terminated at once', () => {
    vi.useFakeTimers();
    const { pool, workers, left, outcomes } = setup(1);
    pool.assign([assignment('joba', 0)]);
    pool.evacuate('all', 20);
    expect(workers[0]!.received.at(-1)).toEqual({ type: 'freeze', tid: 'joba.0' });
    vi.advanceTimersByTime(5);
    workers[0]!.emit(frozen('joba.0'));
    expect(workers[0]!.terminated).toBe(true);
    expect(left).toEqual([expect.objectContaining({ started: true, frozen: expect.objectContaining({ received: 2, unread: [2] }), obtrusivenessMs: expect.any(Number) })]);
    expect(left[0]!.assignment.tid).toBe('joba.0');
    expect(pool.running()).toEqual([]);
    vi.advanceTimersByTime(100);
    expect(left).toHaveLength(1);
    expect(outcomes).toEqual([]);
  });

  it('terminates a task that does not reach a safe point within the grace period; it leaves with no checkpoint', () => {
    vi.useFakeTimers();
    const { pool, workers, left } = setup(1);
    pool.assign([assignment('joba', 0)]);
    pool.evacuate('all', 20);
    vi.advanceTimersByTime(19);
    expect(workers[0]!.terminated).toBe(false);
    vi.advanceTimersByTime(1);
    expect(workers[0]!.terminated).toBe(true);
    expect(left).toEqual([expect.objectContaining({ started: true, frozen: null })]);
    // a frozen checkpoint that comes after the worker was given up is ignored
    workers[0]!.emit(frozen('joba.0'));
    expect(left).toHaveLength(1);
  });

  it('counts a worker ended as its task froze as giving the CPU back then, and waits past the grace for the state it handed on', () => {
    vi.useFakeTimers();
    let now = 0;
    const { pool, workers, left } = setup(1, false, () => now);
    pool.assign([assignment('joba', 0)]);
    pool.evacuate('all', 20);
    now = 9;
    workers[0]!.listener.stopped(6);
    // a large state from another process takes longer to come in than the grace
    now = 45;
    vi.advanceTimersByTime(45);
    expect(left).toEqual([]);
    workers[0]!.emit(frozen('joba.0'));
    expect(left).toEqual([expect.objectContaining({ started: true, frozen: expect.objectContaining({ received: 2 }), obtrusivenessMs: 6 })]);
  });

  it('lets a task whose worker was ended leave without its state if the state never comes, and fails a task whose worker stopped unasked', () => {
    vi.useFakeTimers();
    const { pool, workers, left, outcomes } = setup(2);
    pool.assign([assignment('joba', 0), assignment('joba', 1)]);
    pool.evacuate(new Set(['joba.0']), 20);
    workers[0]!.listener.stopped(1);
    vi.advanceTimersByTime(4_999);
    expect(left).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(left).toEqual([expect.objectContaining({ started: true, frozen: null })]);

    workers[1]!.listener.stopped(2);
    expect(outcomes).toEqual([expect.objectContaining({ tid: 'joba.1', ok: false, error: { code: 'E_TASK_FAILED', message: 'the task worker ended itself without being asked to leave' } })]);
  });

  it('lets queued tasks leave as they came, and only the tasks asked for', () => {
    const { pool, workers, left } = setup(1);
    pool.assign([assignment('joba', 0), assignment('joba', 1), assignment('joba', 2)]);
    pool.evacuate(new Set(['joba.1']), 20);
    expect(left).toEqual([expect.objectContaining({ started: false, frozen: null, obtrusivenessMs: 0 })]);
    expect(left[0]!.assignment.tid).toBe('joba.1');
    expect(pool.held().map((r) => r.tid)).toEqual(['joba.0', 'joba.2']);
    pool.evacuate('all', 0);
    expect(left.map((t) => t.assignment.tid)).toEqual(['joba.1', 'joba.2', 'joba.0']);
    expect(workers[0]!.terminated).toBe(true);
    expect(pool.workersAlive).toBe(0);
  });

  it('raises persist and freeze bits in shared memory, with no message, when the page is cross-origin isolated', () => {
    vi.useFakeTimers();
    const { pool, workers } = setup(1, true);
    pool.assign([assignment('joba', 0)]);
    // each task gets its own cell of the worker's
    const cells = workers[0]!.cells!;
    const cell = startsOf(workers[0]!.received[0]!)[0]!.flag!;
    // a fresh task keeps its first checkpoint at once
    expect(Atomics.load(cells, cell)).toBe(SAFE_POINT_FLAGS.persist);
    Atomics.store(cells, cell, 0);
    vi.advanceTimersByTime(249);
    expect(Atomics.load(cells, cell)).toBe(0);
    vi.advanceTimersByTime(1);
    expect(Atomics.load(cells, cell)).toBe(SAFE_POINT_FLAGS.persist);
    pool.evacuate('all', 20);
    expect(Atomics.load(cells, cell) & SAFE_POINT_FLAGS.freeze).toBe(SAFE_POINT_FLAGS.freeze);
    expect(workers[0]!.received.some((m) => m.type === 'freeze')).toBe(false);
  });

  it('hands a resuming task its state bytes and mailbox with its start', () => {
    const { pool, workers } = setup(1);
    const mailbox = [encodeMessage({ from: 'joba.3', to: 'joba.0', tag: 1, seq: 4, data: 'x' })];
    pool.assign([assignment('joba', 0)], new Map([['joba.0', { stateBuffers: [new Uint8Array([1, 2])], mailbox }]]));
    expect(startsOf(workers[0]!.received[0]!)[0]).toMatchObject({ type: 'start', stateBuffers: [new Uint8Array([1, 2])], mailbox });
  });
});

describe('SlotPool batches', () => {
  /** A pool whose clock the test moves: tasks that take `ms` each. */
  function timed(slots: number, sharedFlags = false) {
    let clock = 0;
    const t = setup(slots, sharedFlags, () => clock);
    return { ...t, tick: (ms: number) => (clock += ms) };
  }
  const handed = (worker: FakeWorker) => worker.received.filter((m) => m.type === 'starts').map((m) => startsOf(m).map((s) => s.task.tid));
  const dones = (...tids: string[]) => ({ type: 'dones', items: tids.map((tid) => ({ type: 'done', tid, ok: true, value: tid })) });
  const many = (n: number, from = 0) => Array.from({ length: n }, (_, i) => assignment('joba', from + i));

  it('hands a worker one task of a job until it knows how long they take, then about half a second of them at once', () => {
    const { pool, workers, outcomes, started, tick } = timed(1);
    pool.assign(many(100));
    expect(handed(workers[0]!)).toEqual([['joba.0']]);
    tick(62.5);
    workers[0]!.emit(dones('joba.0'));
    // 62.5 ms a task: 8 of them
    expect(handed(workers[0]!)[1]).toEqual(['joba.1', 'joba.2', 'joba.3', 'joba.4', 'joba.5', 'joba.6', 'joba.7', 'joba.8']);
    // only the first of them runs; the others wait in the worker, and say nothing yet
    expect(pool.running().map((t) => t.tid)).toEqual(['joba.1']);
    expect(started).toEqual(['joba.0', 'joba.1']);
    expect(pool.holds('joba.8') && pool.refOf('joba.8') !== null).toBe(true);
    expect(pool.post('joba.8', { type: 'deliver', tid: 'joba.8', envelopes: [] })).toBe(false);
    tick(187.5);
    workers[0]!.emit(dones('joba.1', 'joba.2', 'joba.3'));
    expect(outcomes.map((o) => o.tid)).toEqual(['joba.0', 'joba.1', 'joba.2', 'joba.3']);
    expect(pool.running().map((t) => t.tid)).toEqual(['joba.4']);
    expect(started.slice(-3)).toEqual(['joba.2', 'joba.3', 'joba.4']);
    expect(pool.held()).toHaveLength(96);
    // three outcomes in 187.5 ms are 62.5 ms each: the worker is topped up to 8 again
    expect(handed(workers[0]!)[2]).toEqual(['joba.9', 'joba.10', 'joba.11']);
  });

  it('keeps one task a worker for a job whose tasks take longer than the batch', () => {
    const { pool, workers, tick } = timed(2);
    pool.assign(many(10));
    tick(600);
    workers[0]!.emit(dones('joba.0'));
    expect(handed(workers[0]!)).toEqual([['joba.0'], ['joba.2']]);
    expect(pool.queued).toBe(7);
  });

  it('withdraws the tasks waiting behind a leaving one: those given back leave unstarted, one already started freezes in turn', () => {
    vi.useFakeTimers();
    const { pool, workers, left, tick } = timed(1, true);
    pool.assign(many(10));
    tick(125);
    workers[0]!.emit(dones('joba.0'));
    expect(handed(workers[0]!)[1]).toEqual(['joba.1', 'joba.2', 'joba.3', 'joba.4']);
    pool.evacuate('all', 20);
    expect(workers[0]!.received.at(-1)).toEqual({ type: 'withdraw', tids: ['joba.2', 'joba.3', 'joba.4'] });
    // the queue leaves at once
    expect(left.map((t) => t.assignment.tid)).toEqual(['joba.5', 'joba.6', 'joba.7', 'joba.8', 'joba.9']);
    // joba.1 ended before it saw the freeze, and the worker had started joba.2 already
    workers[0]!.emit(dones('joba.1'));
    workers[0]!.emit({ type: 'withdrawn', tids: ['joba.3', 'joba.4'] });
    expect(left.slice(5).map((t) => [t.assignment.tid, t.started])).toEqual([
      ['joba.3', false],
      ['joba.4', false],
    ]);
    expect(pool.running().map((t) => t.tid)).toEqual(['joba.2']);
    const cells = workers[0]!.cells!;
    const cell = startsOf(workers[0]!.received[1]!).find((s) => s.task.tid === 'joba.2')!.flag!;
    expect(Atomics.load(cells, cell) & SAFE_POINT_FLAGS.freeze).toBe(SAFE_POINT_FLAGS.freeze);
    vi.advanceTimersByTime(20);
    expect(left.at(-1)).toMatchObject({ assignment: { tid: 'joba.2' }, started: true, frozen: null });
    expect(workers[0]!.terminated).toBe(true);
    expect(pool.held()).toEqual([]);
  });

  describe('giving tasks back to the coordinator', () => {
    /** One worker running joba.1 with joba.2–4 waiting behind it, and joba.5–9 queued on the page. */
    function busy() {
      const t = timed(1);
      t.pool.assign(many(10));
      t.tick(125);
      t.workers[0]!.emit(dones('joba.0'));
      expect(handed(t.workers[0]!)[1]).toEqual(['joba.1', 'joba.2', 'joba.3', 'joba.4']);
      return t;
    }
    const refs = (...ns: number[]) => ns.map((n) => ({ tid: `joba.${n}`, attempt: 1 }));
    const keepMail = (tid: string) => tid === 'joba.7';

    it('gives queued tasks back at once and asks the worker for those waiting in it; a running one and one with mail stay', () => {
      const { pool, workers, givenBack } = busy();
      pool.giveBack(refs(1, 3, 6, 7, 8), keepMail);
      expect(givenBack).toEqual(['joba.6', 'joba.8']);
      expect(workers[0]!.received.at(-1)).toEqual({ type: 'withdraw', tids: ['joba.3'] });
      workers[0]!.emit({ type: 'withdrawn', tids: ['joba.3'] });
      expect(givenBack).toEqual(['joba.6', 'joba.8', 'joba.3']);
      expect(pool.held().map((r) => r.tid).sort()).toEqual(['joba.1', 'joba.2', 'joba.4', 'joba.5', 'joba.7', 'joba.9']);
    });

    it('lets a task the worker started before it was asked run to its end, and gives nothing back for it', () => {
      const { pool, workers, outcomes, givenBack } = busy();
      pool.giveBack(refs(2), keepMail);
      workers[0]!.emit(dones('joba.1'));
      workers[0]!.emit({ type: 'withdrawn', tids: [] });
      workers[0]!.emit(dones('joba.2'));
      expect(givenBack).toEqual([]);
      expect(outcomes.map((o) => o.tid)).toEqual(['joba.0', 'joba.1', 'joba.2']);
    });

    it('gives back a task asked for when its worker is dropped before answering; the others waiting queue again', () => {
      const { pool, workers, outcomes, givenBack } = busy();
      pool.giveBack(refs(3), keepMail);
      workers[0]!.emit({ type: 'progress', tid: 'joba.1', fraction: 7 });
      expect(outcomes.at(-1)).toMatchObject({ tid: 'joba.1', ok: false });
      expect(givenBack).toEqual(['joba.3']);
      expect(pool.held().map((r) => r.tid).sort()).toEqual(['joba.2', 'joba.4', 'joba.5', 'joba.6', 'joba.7', 'joba.8', 'joba.9']);
    });
  });

  it('puts the tasks waiting in a worker back at the front of the queue when its running task fails it', () => {
    const { pool, workers, outcomes, tick } = timed(1);
    pool.assign(many(6));
    tick(1);
    workers[0]!.emit(dones('joba.0'));
    workers[0]!.emit({ type: 'progress', tid: 'joba.1', fraction: 7 });
    expect(outcomes.map((o) => [o.tid, o.ok])).toEqual([
      ['joba.0', true],
      ['joba.1', false],
    ]);
    expect(workers[0]!.terminated).toBe(true);
    expect(handed(workers[1]!)).toEqual([['joba.2', 'joba.3', 'joba.4', 'joba.5']]);
  });

  it('withdraws a cancelled task waiting in a worker and ignores what the worker says of it after', () => {
    const { pool, workers, outcomes, tick } = timed(1);
    pool.assign(many(4));
    tick(1);
    workers[0]!.emit(dones('joba.0'));
    pool.cancel([{ tid: 'joba.2', attempt: 1 }]);
    expect(workers[0]!.received.at(-1)).toEqual({ type: 'withdraw', tids: ['joba.2'] });
    expect(pool.holds('joba.2')).toBe(false);
    workers[0]!.emit(dones('joba.1', 'joba.2', 'joba.3'));
    expect(outcomes.map((o) => o.tid)).toEqual(['joba.0', 'joba.1', 'joba.3']);
  });

  it('counts a deadline from when the task runs, not from when it was handed', () => {
    vi.useFakeTimers();
    const { pool, workers, outcomes, tick } = timed(1);
    pool.assign(Array.from({ length: 3 }, (_, i) => assignment('joba', i, { timeoutMs: 1000 })));
    tick(1);
    workers[0]!.emit(dones('joba.0'));
    vi.advanceTimersByTime(900);
    workers[0]!.emit(dones('joba.1'));
    vi.advanceTimersByTime(900);
    expect(outcomes.map((o) => [o.tid, o.ok])).toEqual([
      ['joba.0', true],
      ['joba.1', true],
    ]);
    vi.advanceTimersByTime(100);
    expect(outcomes.at(-1)).toMatchObject({ tid: 'joba.2', ok: false, error: { code: 'E_TASK_TIMEOUT' } });
  });
});
