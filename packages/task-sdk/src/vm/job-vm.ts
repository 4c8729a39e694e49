import { LIMITS, encodeMessage, makeTid, parseTid, type ErrorBody, type TaskOp } from '@webpvm/vm-protocol';
import { taskSeed } from '../runtime/determinism.ts';
import { type GroupsSnapshot, TaskGroups } from './task-groups.ts';

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

/**
 * pvm_notify's message: `from` ended, `ok` or not. It is `from`'s next message to `to` (`seq`):
 * it comes after the others, and a copy of it sent again is dropped like any message's.
 */
export interface ExitNotice {
  from: string;
  to: string;
  tag: number;
  ok: boolean;
  seq: number;
}

/** What a request or the end of a task sets going besides the caller's own answer, in this order. */
export type VmEffect =
  /** Start these tasks at once: PVM programs expect spawned tasks to run side by side. */
  | { kind: 'spawn'; tasks: VmTask[] }
  /** The answer to a request that waited (a barrier's callers, the last caller's own included). */
  | { kind: 'reply'; tid: string; requestId: number; answer: VmAnswer }
  | { kind: 'notice'; notice: ExitNotice };

/**
 * What a JobVm knows beyond its tasks' numbering and states, as plain JSON: the coordinator stores
 * it with the job, before it answers a request that changed it, so that a restart knows every
 * answer it gave, every barrier call it counted, every watcher and every group.
 */
export interface VmState {
  answers: [tid: string, [requestId: number, answer: VmAnswer][]][];
  inBarrier: [tid: string, requestId: number][];
  watchers: [tid: string, { notifier: string; tag: number }[]][];
  lastSent: [tid: string, [to: string, seq: number][]][];
  groups: GroupsSnapshot<{ tid: string; requestId: number }>;
  /** Absent in a state stored before notices were kept. */
  notices?: [notifier: string, ExitNotice[]][];
}

/** Where a tid stands for a task of this job that addresses it. */
export type VmStanding = 'another-job' | 'no-such-task' | 'live' | 'ended';

/** What the machine knows of a task beyond who it is: one byte each, so a job of millions stays small. */
const LIVE = 0;
const ENDED_OK = 1;
const ENDED_FAILED = 2;

const DONE: VmAnswer = { ok: true, value: null };

const refusal = (code: ErrorBody['code'], message: string): VmAnswer => ({ ok: false, error: { code, message } });

/**
 * The PVM services of one job — spawn, groups, barriers, broadcast membership, exit
 * notification, and where a tid stands — as pure bookkeeping: no I/O, no clock, no host. The
 * coordinator (for tabs) and runLocal (for worker_threads) each carry out the effects it returns
 * their own way, so a program behaves the same under both: same tids, same seeds, same answers.
 *
 * It keeps no object per task: a task's identity is its index (`add` and `describe` make the
 * VmTask, which the caller keeps as long as it needs it), and what it knows beyond is one byte
 * each — a job of ten million tasks costs ten megabytes here. Answers, barrier calls, watchers
 * and last seqs are kept only for the tasks that have them.
 */
export class JobVm {
  readonly jobId: string;
  readonly #seed: number;
  readonly #maxSpawned: number;
  /** How many tasks the job has had; task `i` of them is `<jobId>.<i>`. */
  #size = 0;
  #spawned = 0;
  /** Per task index: LIVE, ENDED_OK or ENDED_FAILED. */
  #states = new Uint8Array(64);
  /**
   * tid → requestId → the answer given, so that a request made again (after a reconnect, or by a
   * task replaying from a checkpoint) gets the same answer — the same tids from the same spawn —
   * and is not carried out twice. Dropped when the task ends.
   */
  readonly #answers = new Map<string, Map<number, VmAnswer>>();
  /** tid → the requestId of the barrier call it waits in: asked again, it still waits. */
  readonly #inBarrier = new Map<string, number>();
  /** Watched tid → who wants a message when it ends (pvm_notify). */
  readonly #watchers = new Map<string, { notifier: string; tag: number }[]>();
  /** Ended tid → the last seq it sent each receiver, for notices asked for after its end. */
  readonly #lastSent = new Map<string, ReadonlyMap<string, number>>();
  /**
   * Notifier → the exit notices sent it, kept until it ends: it may need them again (restarted
   * from a checkpoint older than them, or its host's connection broke with them on their way).
   */
  readonly #notices = new Map<string, ExitNotice[]>();
  readonly #groups = new TaskGroups<{ tid: string; requestId: number }>();

  /**
   * `seed` is the job's: each task's seed derives from it and the task's index (determinism.ts).
   * `maxSpawned` bounds the tasks its tasks may spawn in all; root tasks are the caller's to bound.
   */
  constructor(jobId: string, seed: number, maxSpawned: number = LIMITS.tasksPerJob) {
    this.jobId = jobId;
    this.#seed = seed;
    this.#maxSpawned = maxSpawned;
  }

  /** How many tasks the job has had: roots and spawned, ended or not. */
  get size(): number {
    return this.#size;
  }

  /** A new task of this job, numbered after the others: a root task, or (with a parent) a spawned one. */
  add(input: unknown, parent: string | null, name: string | null): VmTask {
    const index = this.#size++;
    if (parent !== null) this.#spawned++;
    if (index === this.#states.length) this.#grow(index + 1);
    return this.describe(index, input, parent, name);
  }

  /** Who task `index` is, for a task this machine already counts (one read back from a store). */
  describe(index: number, input: unknown, parent: string | null, name: string | null): VmTask {
    return { tid: makeTid(this.jobId, index), index, parent, name, input, seed: taskSeed(this.#seed, index) };
  }

  /**
   * After a restart: the job has had `size` tasks, `spawned` of them spawned. Each has ended
   * well, but those in `live` (not ended yet) and in `failed` — what a store can list cheaply,
   * when most of a big job is done.
   */
  restore(size: number, spawned: number, live: Iterable<number>, failed: Iterable<number>): void {
    this.#size = size;
    this.#spawned = spawned;
    this.#grow(size);
    this.#states.fill(ENDED_OK, 0, size);
    for (const index of live) this.#states[index] = LIVE;
    for (const index of failed) this.#states[index] = ENDED_FAILED;
  }

  /** Whether it knows anything beyond its tasks' states (a bag job's never does): only then is `state` worth storing. */
  get holdsState(): boolean {
    return this.#answers.size > 0 || this.#inBarrier.size > 0 || this.#watchers.size > 0 || this.#lastSent.size > 0 || this.#notices.size > 0 || !this.#groups.empty;
  }

  /** What a restart needs beyond `restore`'s counts (VmState). */
  state(): VmState {
    return {
      answers: [...this.#answers].map(([tid, answers]) => [tid, [...answers]]),
      inBarrier: [...this.#inBarrier],
      watchers: [...this.#watchers],
      lastSent: [...this.#lastSent].map(([tid, sent]) => [tid, [...sent]]),
      groups: this.#groups.snapshot(),
      notices: [...this.#notices],
    };
  }

  /** Resumes what `state` kept, after `restore`. */
  restoreState(state: VmState): void {
    for (const [tid, answers] of state.answers) this.#answers.set(tid, new Map(answers));
    for (const [tid, requestId] of state.inBarrier) this.#inBarrier.set(tid, requestId);
    for (const [tid, watchers] of state.watchers) this.#watchers.set(tid, watchers);
    for (const [tid, sent] of state.lastSent) this.#lastSent.set(tid, new Map(sent));
    this.#groups.restore(state.groups);
    for (const [notifier, notices] of state.notices ?? []) this.#notices.set(notifier, notices);
  }

  /** The last seq ended task `tid` sent each receiver. */
  sentBy(tid: string): ReadonlyMap<string, number> {
    return this.#lastSent.get(tid) ?? new Map();
  }

  /** The exit notices sent `notifier` so far, in the order they were sent. */
  noticesFor(notifier: string): readonly ExitNotice[] {
    return this.#notices.get(notifier) ?? [];
  }

  standing(tid: string): VmStanding {
    if (parseTid(tid).jobId !== this.jobId) return 'another-job';
    const index = this.#indexOf(tid);
    if (index === -1) return 'no-such-task';
    return this.#states[index] === LIVE ? 'live' : 'ended';
  }

  /** A request of task `tid`, which the caller knows to be running; a barrier's answer comes later, as an effect. */
  request(tid: string, requestId: number, op: TaskOp): { answer: VmAnswer | 'later'; effects: VmEffect[] } {
    if (this.standing(tid) !== 'live') return { answer: refusal('E_NOT_FOUND', `${tid} is not a running task of job ${this.jobId}`), effects: [] };
    const earlier = this.#answers.get(tid)?.get(requestId);
    if (earlier) return { answer: earlier, effects: [] };
    if (this.#inBarrier.get(tid) === requestId) return { answer: 'later', effects: [] };
    const effects: VmEffect[] = [];
    const answer = this.#carryOut(tid, requestId, op, effects);
    if (answer !== 'later') this.#remember(tid, requestId, answer);
    return { answer, effects };
  }

  /**
   * Task `tid` ended for good: it leaves its groups and its watchers hear of it, after the last
   * message it sent each of them (`lastSent`: receiver → seq).
   */
  ended(tid: string, ok: boolean, lastSent: ReadonlyMap<string, number>): VmEffect[] {
    const index = this.#indexOf(tid);
    if (index === -1 || this.#states[index] !== LIVE) return [];
    this.#states[index] = ok ? ENDED_OK : ENDED_FAILED;
    if (lastSent.size) this.#lastSent.set(tid, lastSent);
    this.#answers.delete(tid);
    this.#inBarrier.delete(tid);
    this.#notices.delete(tid);
    this.#groups.leaveAll(tid);
    const watchers = this.#watchers.get(tid);
    if (!watchers) return [];
    this.#watchers.delete(tid);
    return watchers.map(({ notifier, tag }) => this.#notice(tid, notifier, tag));
  }

  #carryOut(tid: string, requestId: number, op: TaskOp, effects: VmEffect[]): VmAnswer | 'later' {
    switch (op.kind) {
      case 'spawn': {
        if (this.#spawned + op.inputs.length > this.#maxSpawned) {
          return refusal('E_TOO_LARGE', `a job's tasks spawn at most ${this.#maxSpawned} tasks`);
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
        this.#inBarrier.set(tid, requestId);
        for (const waiter of released) {
          this.#inBarrier.delete(waiter.tid);
          this.#remember(waiter.tid, waiter.requestId, DONE);
          effects.push({ kind: 'reply', tid: waiter.tid, requestId: waiter.requestId, answer: DONE });
        }
        return 'later';
      }
      case 'notify': {
        const foreign = op.tids.find((watched) => parseTid(watched).jobId !== this.jobId);
        if (foreign) return refusal('E_FORBIDDEN', `${foreign} is not a task of job ${this.jobId}`);
        for (const watched of op.tids) {
          // As in PVM, a task that has ended — or never was — is reported at once, as not ok when it never ran.
          if (this.standing(watched) === 'live') {
            const watchers = this.#watchers.get(watched) ?? [];
            watchers.push({ notifier: tid, tag: op.tag });
            this.#watchers.set(watched, watchers);
          } else {
            effects.push(this.#notice(watched, tid, op.tag));
          }
        }
        return DONE;
      }
    }
  }

  /** The index of a tid of this job that exists, else -1 (`j.07` is not `j.7`). */
  #indexOf(tid: string): number {
    const { jobId, index } = parseTid(tid);
    return jobId === this.jobId && index < this.#size && makeTid(jobId, index) === tid ? index : -1;
  }

  /** Room for `size` tasks' bytes, doubling so that adding tasks one by one stays cheap. */
  #grow(size: number): void {
    if (size <= this.#states.length) return;
    let length = this.#states.length;
    while (length < size) length *= 2;
    const grown = new Uint8Array(length);
    grown.set(this.#states);
    this.#states = grown;
  }

  #remember(tid: string, requestId: number, answer: VmAnswer): void {
    const answers = this.#answers.get(tid) ?? new Map<number, VmAnswer>();
    answers.set(requestId, answer);
    this.#answers.set(tid, answers);
  }

  /**
   * The notice that `ended` (ended now, earlier, or never here) sends `notifier`: the seq after
   * its last message to it and after its notices to it before, kept while `notifier` runs.
   */
  #notice(ended: string, notifier: string, tag: number): VmEffect {
    const index = this.#indexOf(ended);
    const ok = index !== -1 && this.#states[index] === ENDED_OK;
    const sent = this.#notices.get(notifier) ?? [];
    let last = this.#lastSent.get(ended)?.get(notifier) ?? 0;
    for (const earlier of sent) if (earlier.from === ended) last = Math.max(last, earlier.seq);
    const notice = { from: ended, to: notifier, tag, ok, seq: last + 1 };
    if (this.standing(notifier) === 'live') this.#notices.set(notifier, [...sent, notice]);
    return { kind: 'notice', notice };
  }
}

/** An exit notice as the message its notifier receives: `{tid, ok}` from the task that ended. */
export function encodeNotice({ from, to, tag, ok, seq }: ExitNotice): Uint8Array {
  return encodeMessage({ from, to, tag, seq, data: { tid: from, ok } });
}
