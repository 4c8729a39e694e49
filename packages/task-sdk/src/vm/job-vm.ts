import { LIMITS, encodeMessage, makeTid, parseTid, type ErrorBody, type TaskOp } from '@webpvm/vm-protocol';
import { taskSeed } from '../runtime/determinism.ts';
import { TaskGroups } from './task-groups.ts';

/** A task as the virtual machine knows it: who it is and what it was started with, wherever it runs. */
export interface VmTask {
  readonly tid: string;
  readonly index: number;
  /** The task that spawned this one; null for a root task. */
  readonly parent: string | null;
  /** The program's named export it runs; null for the default export. */
  readonly name: string | null;
  readonly input: unknown;
  /** The seed of its `ctx.random`: fixed per task, so every attempt and every replica draws the same numbers. */
  readonly seed: number;
}

export type VmAnswer = { ok: true; value: unknown } | { ok: false; error: ErrorBody };

/** pvm_notify's message: `from` ended, `ok` or not; it comes after the `after`th message `from` sent `to`. */
export interface ExitNotice {
  from: string;
  to: string;
  tag: number;
  ok: boolean;
  after: number;
}

/** What a request or the end of a task sets going besides the caller's own answer, in this order. */
export type VmEffect =
  /** Start these tasks at once: PVM programs expect spawned tasks to run side by side. */
  | { kind: 'spawn'; tasks: VmTask[] }
  /** The answer to a request that waited (a barrier's callers, the last caller's own included). */
  | { kind: 'reply'; tid: string; requestId: number; answer: VmAnswer }
  | { kind: 'notice'; notice: ExitNotice };

/** Where a tid stands for a task of this job that addresses it. */
export type VmStanding = 'another-job' | 'no-such-task' | 'live' | 'ended';

interface TaskRecord {
  readonly task: VmTask;
  ended: { ok: boolean; lastSent: ReadonlyMap<string, number> } | null;
  /**
   * requestId → the answer given, so that a request made again (after a reconnect, or by a task
   * replaying from a checkpoint) gets the same answer — the same tids from the same spawn — and
   * is not carried out twice.
   */
  readonly answers: Map<number, VmAnswer>;
  /** The requestId of the barrier call the task waits in, if any: asked again, it still waits. */
  inBarrier: number | null;
  /** Who wants a message when this task ends (pvm_notify). */
  watchers: { notifier: string; tag: number }[];
}

const DONE: VmAnswer = { ok: true, value: null };

const refusal = (code: ErrorBody['code'], message: string): VmAnswer => ({ ok: false, error: { code, message } });

/**
 * The PVM services of one job — spawn, groups, barriers, broadcast membership, exit
 * notification, and where a tid stands — as pure bookkeeping: no I/O, no clock, no host. The
 * coordinator (for tabs) and runLocal (for worker_threads) each carry out the effects it returns
 * their own way, so a program behaves the same under both: same tids, same seeds, same answers.
 */
export class JobVm {
  readonly jobId: string;
  readonly #seed: number;
  readonly #maxTasks: number;
  readonly #tasks: TaskRecord[] = [];
  readonly #byTid = new Map<string, TaskRecord>();
  readonly #groups = new TaskGroups<{ tid: string; requestId: number }>();

  /** `seed` is the job's: each task's seed derives from it and the task's index (determinism.ts). */
  constructor(jobId: string, seed: number, maxTasks: number = LIMITS.tasksPerJob) {
    this.jobId = jobId;
    this.#seed = seed;
    this.#maxTasks = maxTasks;
  }

  /** How many tasks the job has had: roots and spawned, ended or not. */
  get size(): number {
    return this.#tasks.length;
  }

  /** A new task of this job, numbered after the others (a root task, or one a restart brings back). */
  add(input: unknown, parent: string | null, name: string | null): VmTask {
    const index = this.#tasks.length;
    const task: VmTask = { tid: makeTid(this.jobId, index), index, parent, name, input, seed: taskSeed(this.#seed, index) };
    const record: TaskRecord = { task, ended: null, answers: new Map(), inBarrier: null, watchers: [] };
    this.#tasks.push(record);
    this.#byTid.set(task.tid, record);
    return task;
  }

  task(tid: string): VmTask | undefined {
    return this.#byTid.get(tid)?.task;
  }

  standing(tid: string): VmStanding {
    if (parseTid(tid).jobId !== this.jobId) return 'another-job';
    const record = this.#byTid.get(tid);
    if (!record) return 'no-such-task';
    return record.ended ? 'ended' : 'live';
  }

  /** A request of task `tid`, which the caller knows to be running; a barrier's answer comes later, as an effect. */
  request(tid: string, requestId: number, op: TaskOp): { answer: VmAnswer | 'later'; effects: VmEffect[] } {
    const record = this.#byTid.get(tid);
    if (!record || record.ended) return { answer: refusal('E_NOT_FOUND', `${tid} is not a running task of job ${this.jobId}`), effects: [] };
    const earlier = record.answers.get(requestId);
    if (earlier) return { answer: earlier, effects: [] };
    if (record.inBarrier === requestId) return { answer: 'later', effects: [] };
    const effects: VmEffect[] = [];
    const answer = this.#carryOut(record, requestId, op, effects);
    if (answer !== 'later') record.answers.set(requestId, answer);
    return { answer, effects };
  }

  /**
   * Task `tid` ended for good: it leaves its groups and its watchers hear of it, after the last
   * message it sent each of them (`lastSent`: receiver → seq).
   */
  ended(tid: string, ok: boolean, lastSent: ReadonlyMap<string, number>): VmEffect[] {
    const record = this.#byTid.get(tid);
    if (!record || record.ended) return [];
    record.ended = { ok, lastSent };
    record.answers.clear();
    record.inBarrier = null;
    this.#groups.leaveAll(tid);
    const effects = record.watchers.map(({ notifier, tag }) => this.#notice(record, notifier, tag));
    record.watchers = [];
    return effects;
  }

  #carryOut(record: TaskRecord, requestId: number, op: TaskOp, effects: VmEffect[]): VmAnswer | 'later' {
    const { tid } = record.task;
    switch (op.kind) {
      case 'spawn': {
        if (this.#tasks.length + op.inputs.length > this.#maxTasks) {
          return refusal('E_TOO_LARGE', `a job holds at most ${this.#maxTasks} tasks`);
        }
        const tasks = op.inputs.map((input) => this.add(input ?? null, tid, op.name));
        effects.push({ kind: 'spawn', tasks });
        return { ok: true, value: tasks.map((t) => t.tid) };
      }
      case 'join':
        return { ok: true, value: this.#groups.join(op.group, tid) };
      case 'leave':
        return this.#groups.leave(op.group, tid) ? DONE : refusal('E_CONFLICT', `${tid} is not in group ${op.group}`);
      case 'size':
        return { ok: true, value: this.#groups.size(op.group) };
      case 'members':
        return { ok: true, value: this.#groups.members(op.group) };
      case 'barrier': {
        const released = this.#groups.barrier(op.group, op.count, { tid, requestId });
        if (released === null) return refusal('E_CONFLICT', `barrier ${op.group} is already waiting for another count`);
        record.inBarrier = requestId;
        for (const waiter of released) {
          const waiting = this.#byTid.get(waiter.tid)!;
          waiting.inBarrier = null;
          waiting.answers.set(waiter.requestId, DONE);
          effects.push({ kind: 'reply', tid: waiter.tid, requestId: waiter.requestId, answer: DONE });
        }
        return 'later';
      }
      case 'notify': {
        const foreign = op.tids.find((watched) => parseTid(watched).jobId !== this.jobId);
        if (foreign) return refusal('E_FORBIDDEN', `${foreign} is not a task of job ${this.jobId}`);
        for (const watched of op.tids) {
          const target = this.#byTid.get(watched);
          // As in PVM, a task that has ended — or never was — is reported at once, as not ok when it never ran.
          if (target && !target.ended) target.watchers.push({ notifier: tid, tag: op.tag });
          else effects.push(target ? this.#notice(target, tid, op.tag) : { kind: 'notice', notice: { from: watched, to: tid, tag: op.tag, ok: false, after: 0 } });
        }
        return DONE;
      }
    }
  }

  #notice(ended: TaskRecord, notifier: string, tag: number): VmEffect {
    const { ok, lastSent } = ended.ended!;
    return { kind: 'notice', notice: { from: ended.task.tid, to: notifier, tag, ok, after: lastSent.get(notifier) ?? 0 } };
  }
}

/** An exit notice as the message its notifier receives: seq 0, like every message the machine itself sends. */
export function encodeNotice({ from, to, tag, ok, after }: ExitNotice): Uint8Array {
  return encodeMessage({ from, to, tag, seq: 0, after, data: { tid: from, ok } });
}
