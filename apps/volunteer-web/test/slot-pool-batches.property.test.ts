import { MAX_HANDED, SAFE_POINT_FLAGS, type TaskAssignment, type ToWorker } from '@webpvm/vm-protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SlotPool } from '../src/host/slot-pool.ts';
import type { TaskWorkerListener } from '../src/host/task-worker-handle.ts';
import { assignment } from './support/assignments.ts';
import { sharedCells } from './support/fake-workers.ts';

type Start = Extract<ToWorker, { type: 'start' }>;

/**
 * A worker as the runtime behaves for `starts`: it runs what it is handed one task after another,
 * reports outcomes in order, gives back on `withdraw` what it has not started, and freezes its
 * running task when asked (by message or by its cell).
 */
class ModelWorker {
  queue: Start[] = [];
  /** How many of the queue's tasks have started: the running one is queue[0] when 1. */
  started = 0;
  withdraws: string[][] = [];
  freezeAsked = new Set<string>();
  terminated = false;

  constructor(
    readonly listener: TaskWorkerListener,
    readonly cells: Int32Array | null,
  ) {}

  post(message: ToWorker): void {
    if (this.terminated) return;
    if (message.type === 'starts') this.queue.push(...message.tasks);
    if (message.type === 'withdraw') this.withdraws.push(message.tids);
    if (message.type === 'freeze') this.freezeAsked.add(message.tid);
    if (this.queue.length && !this.started) this.started = 1;
  }

  get running(): Start | undefined {
    return this.started ? this.queue[0] : undefined;
  }

  /** The running task ends; the next starts at once. */
  finishOne(): void {
    const task = this.running;
    if (!task) return;
    this.queue.shift();
    this.started = this.queue.length ? 1 : 0;
    this.listener.message({ type: 'dones', items: [{ type: 'done', tid: task.task.tid, ok: true, value: task.task.input }] });
  }

  /** Answers the oldest withdraw: of those tids, the ones not started. */
  answerWithdraw(): void {
    const tids = this.withdraws.shift();
    if (!tids) return;
    const asked = new Set(tids);
    const given = this.queue.filter((s, i) => i > 0 && asked.has(s.task.tid)).map((s) => s.task.tid);
    this.queue = this.queue.filter((s, i) => i === 0 || !asked.has(s.task.tid));
    this.listener.message({ type: 'withdrawn', tids: given });
  }

  /** The running task reaches a safe point: it freezes if asked to. */
  safePoint(): void {
    const task = this.running;
    if (!task) return;
    const flagged = this.cells && task.flag !== undefined && Atomics.load(this.cells, task.flag) & SAFE_POINT_FLAGS.freeze;
    if (!flagged && !this.freezeAsked.has(task.task.tid)) return;
    this.listener.message({
      type: 'checkpoint',
      tid: task.task.tid,
      frozen: true,
      checkpoint: { state: null, rng: [1, 2, 3, 4], sent: [], requests: 0 },
      stateBuffers: [],
      received: 0,
      unread: [],
      unreadLane: [],
      delivered: [],
      log: [],
    });
  }
}

type Op =
  | { op: 'finish'; worker: number; times: number }
  | { op: 'withdrawn'; worker: number }
  | { op: 'safePoint'; worker: number }
  | { op: 'crash'; worker: number }
  | { op: 'evacuate'; tids: number[] | 'all'; graceMs: number }
  | { op: 'cancel'; task: number }
  | { op: 'giveBack'; tasks: number[] }
  | { op: 'assign'; from: number; count: number }
  | { op: 'tick'; ms: number };

const worker = fc.nat(5);
const ops: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ op: fc.constant('finish' as const), worker, times: fc.integer({ min: 1, max: 20 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('withdrawn' as const), worker }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('safePoint' as const), worker }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('crash' as const), worker }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('evacuate' as const),
      tids: fc.oneof(fc.constant('all' as const), fc.array(fc.nat(199), { maxLength: 8 })),
      // with a grace period the running task may freeze at a safe point; with none (the page leaving) it goes at once
      graceMs: fc.constantFrom(0, 60_000),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('cancel' as const), task: fc.nat(199) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('giveBack' as const), tasks: fc.array(fc.nat(199), { maxLength: 12 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('assign' as const), from: fc.nat(150), count: fc.integer({ min: 1, max: 50 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.oneof(fc.constant(0.05), fc.constant(1), fc.constant(30)) }) },
);

describe('SlotPool batches, under any interleaving', () => {
  it('ends every task it was given exactly once — done, failed, left, cancelled or given back — and never runs one in two workers at once', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.boolean(), fc.array(ops, { maxLength: 120 }), (slots, sharedFlags, script) => {
        let now = 0;
        const workers: ModelWorker[] = [];
        const ended = new Map<string, string[]>();
        const end = (tid: string, how: string) => ended.set(tid, [...(ended.get(tid) ?? []), how]);
        const given = new Set<string>();
        const cancelled = new Set<string>();
        const startedTids = new Set<string>();
        const pool = new SlotPool({
          slots,
          now: () => now,
          checkpointIntervalMs: () => 1_000_000,
          spawn: (_job, listener) => {
            const w = new ModelWorker(listener, sharedFlags ? new Int32Array(new SharedArrayBuffer(4 * MAX_HANDED)) : null);
            workers.push(w);
            return { post: (message) => w.post(message), lane: (_link, _stream, _gift, made) => made(false), terminate: () => void (w.terminated = true), cells: w.cells && sharedCells(w.cells) };
          },
          events: {
            outcome: (o) => end(o.tid, o.ok ? 'done' : 'failed'),
            left: (t) => end(t.assignment.tid, 'left'),
            givenBack: (refs) => {
              for (const ref of refs) {
                // Only a task that never started goes back.
                expect(startedTids.has(ref.tid), ref.tid).toBe(false);
                end(ref.tid, 'given back');
              }
            },
            checkpoint: () => undefined,
            progress: () => undefined,
            log: () => undefined,
            started: (ref) => void startedTids.add(ref.tid),
            send: () => undefined,
            laneWrote: () => undefined,
            resent: () => undefined,
            endedLog: () => undefined,
            logFull: () => undefined,
            laneSent: () => undefined,
            delivered: () => undefined,
            laneClosed: () => undefined,
            request: () => undefined,
            change: () => undefined,
          },
        });
        const assign = (tasks: TaskAssignment[]) => {
          // A task that ended here may come back as a new attempt; one still held is ignored by the pool.
          const fresh = tasks.filter((t) => !given.has(t.tid));
          for (const t of fresh) given.add(t.tid);
          pool.assign(fresh);
        };
        const live = () => workers.filter((w) => !w.terminated);
        const at = (i: number) => live()[i % Math.max(1, live().length)];
        assign(Array.from({ length: 40 }, (_, i) => assignment('joba', i)));

        for (const step of script) {
          if (step.op === 'finish') for (let i = 0; i < step.times; i++) at(step.worker)?.finishOne();
          if (step.op === 'withdrawn') at(step.worker)?.answerWithdraw();
          if (step.op === 'safePoint') at(step.worker)?.safePoint();
          if (step.op === 'crash') at(step.worker)?.listener.error('E_TASK_FAILED', 'crashed');
          if (step.op === 'evacuate') pool.evacuate(step.tids === 'all' ? 'all' : new Set(step.tids.map((n) => `joba.${n}`)), step.graceMs);
          if (step.op === 'cancel' && pool.holds(`joba.${step.task}`)) {
            cancelled.add(`joba.${step.task}`);
            end(`joba.${step.task}`, 'cancelled');
            pool.cancel([{ tid: `joba.${step.task}`, attempt: 1 }]);
          }
          if (step.op === 'giveBack') pool.giveBack(step.tasks.map((n) => ({ tid: `joba.${n}`, attempt: 1 })), (tid) => tid.endsWith('7'));
          if (step.op === 'assign') assign(Array.from({ length: step.count }, (_, i) => assignment('joba', step.from + i)));
          if (step.op === 'tick') now += step.ms;

          // No task runs in two live workers at once.
          const running = live().flatMap((w) => (w.running ? [w.running.task.tid] : []));
          expect(new Set(running).size).toBe(running.length);
          // What the pool holds is what was given and has not ended.
          for (const ref of pool.held()) expect(ended.has(ref.tid)).toBe(false);
        }

        // Drain: every worker answers and finishes what it has, until the pool holds nothing.
        for (let round = 0; round < 10_000 && pool.held().length; round++) {
          for (const w of live()) {
            w.answerWithdraw();
            w.finishOne();
          }
        }
        expect(pool.held()).toEqual([]);
        for (const tid of given) expect(ended.get(tid), tid).toHaveLength(1);
        expect(ended.size).toBe(given.size);
        pool.terminateAll();
      }),
      { numRuns: 300 },
    );
  });
});
