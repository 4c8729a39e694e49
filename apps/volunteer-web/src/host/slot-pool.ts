/*
 * One module past 400 lines, on purpose: a slot's worker, its freeze flag, the task it runs, the
 * queue and the task's timers (deadline, freeze grace) change together in every transition —
 * start, finish, abort, leave, cancel — and each must leave all of them consistent. Split, that
 * one state machine would be spread over files that reach into each other's slots. What a worker
 * says is checked in worker-reports.ts before any of it is touched.
 */
import {
  LIMITS,
  SAFE_POINT_FLAGS,
  type ErrorBody,
  type FromWorker,
  type SealedMessage,
  type TaskAssignment,
  type TaskOp,
  type TaskOutcome,
  type TaskRef,
  type ToWorker,
} from '@webpvm/vm-protocol';
import type { DeliveryReport } from './messaging/inboxes.ts';
import type { SpawnTaskWorker, TaskWorkerHandle } from './task-worker-handle.ts';
import { checkDelivered, checkLaneSent, checkSend, parseWorkerReport } from './worker-reports.ts';
import { type Clock, type Timer, systemClock } from './clock.ts';

/** A checkpoint as the worker reports it (worker.ts). */
export type WorkerCheckpoint = Extract<FromWorker, { type: 'checkpoint' }>;

/** A task that left the pool to move elsewhere (see `evacuate`). */
export interface LeftTask {
  assignment: TaskAssignment;
  /** False for a task that was only queued here: it goes back as it came. */
  started: boolean;
  /** The checkpoint it froze at; null when its worker was terminated first (replay from the last one). */
  frozen: WorkerCheckpoint | null;
  /** From the evacuation order to the worker's end. */
  obtrusivenessMs: number;
}

export interface PoolEvents {
  /** A task ended with a result or an error; it is no longer held by the pool. */
  outcome(outcome: TaskOutcome): void;
  /** A periodic checkpoint of a running task. */
  checkpoint(ref: TaskRef, checkpoint: WorkerCheckpoint): void;
  /** A task left the pool by `evacuate`; it reports no outcome here. */
  left(task: LeftTask): void;
  progress(ref: TaskRef, fraction: number): void;
  log(ref: TaskRef, line: string): void;
  /** The task's worker was handed the task: messages waiting for it can go. */
  started(ref: TaskRef): void;
  /** A message the task sends; `from` is the task itself and `to` a task of its job. */
  send(ref: TaskRef, message: SealedMessage): void;
  /** The task wrote this message (its envelope, `bytes`) on a lane (messaging/lanes.ts). */
  laneSent(ref: TaskRef, message: Pick<SealedMessage, 'from' | 'to' | 'seq'>, bytes: Uint8Array): void;
  /** The worker delivered these to the task, in this order (worker.ts `delivered`); a lane's messages come sealed. */
  delivered(ref: TaskRef, entries: DeliveryReport[]): void;
  /** The task's lane to `to` closed. */
  laneClosed(ref: TaskRef, to: string): void;
  request(ref: TaskRef, requestId: number, op: TaskOp): void;
  change(): void;
}

export interface SlotPoolOptions {
  slots: number;
  spawn: SpawnTaskWorker;
  checkpointIntervalMs(): number;
  events: PoolEvents;
  /** Raise freezes in shared memory (the page is cross-origin isolated) rather than by message. */
  sharedFlags?: boolean;
  now?: () => number;
  /** Grace periods, deadlines and persist beats must keep time on a hidden page (clock.ts). */
  clock?: Clock;
}

/** What a task starts with besides its assignment when it resumes from an image. */
export type StartExtras = Pick<Extract<ToWorker, { type: 'start' }>, 'stateBuffers' | 'mailbox' | 'delivered'>;

export interface RunningTaskView {
  tid: string;
  attempt: number;
  progress: number;
}

interface RunningTask {
  assignment: TaskAssignment;
  progress: number;
  deadline: Timer | null;
  /** Set once the task was asked to freeze: when, and the timer that ends its grace period. */
  leaving: { since: number; grace: Timer } | null;
}

/** One worker at a time; the worker stays bound to the job whose program it loaded. */
interface Slot {
  worker: TaskWorkerHandle | null;
  /** The freeze flag shared with the worker (index 0), when the page is cross-origin isolated. */
  flag: Int32Array | null;
  jobId: string | null;
  task: RunningTask | null;
  /** A slot beyond `slots` for one spawned task, gone when the task ends. */
  extra: boolean;
}

/** The checkpoint interval may be 0 (every call): the page still raises the bit at most this often. */
const PERSIST_TICK_MIN_MS = 20;

const sameRef = (a: TaskRef, b: TaskRef) => a.tid === b.tid && a.attempt === b.attempt;

/**
 * Runs assigned root and bag tasks in at most `slots` Web Workers, one task per worker at a
 * time. A spawned task gets a worker of its own at once, past `slots`: PVM programs spawn tasks
 * that mostly wait for each other's messages, and all of them must run for any to finish. Task
 * code is untrusted: everything a worker says is parsed, and a worker that says something
 * malformed or crashes fails its task and is thrown away.
 */
export class SlotPool {
  #options: SlotPoolOptions;
  #slots: Slot[];
  #extra: Slot[] = [];
  /** Slots by the tid they run: every message a task sends or receives looks its task up. */
  #running = new Map<string, Slot>();
  #queue: TaskAssignment[] = [];
  #extras = new Map<string, StartExtras>();
  #workersStarted = 0;
  #now: () => number;
  #clock: Clock;
  /** Raises the persist bit of every running task's flag once per checkpoint interval. */
  #persistTimer: Timer | null = null;

  constructor(options: SlotPoolOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
    this.#clock = options.clock ?? systemClock;
    this.#slots = Array.from({ length: options.slots }, () => ({ worker: null, flag: null, jobId: null, task: null, extra: false }));
  }

  /** Workers alive now, busy or idle: the page's share of the machine's CPU. */
  get workersAlive(): number {
    return this.#all().filter((s) => s.worker).length;
  }

  get queued(): number {
    return this.#queue.length;
  }

  get workersStarted(): number {
    return this.#workersStarted;
  }

  running(): RunningTaskView[] {
    return this.#all().flatMap((s) =>
      s.task ? [{ tid: s.task.assignment.tid, attempt: s.task.assignment.attempt, progress: s.task.progress }] : [],
    );
  }

  /** The attempt of `tid` this pool holds, running or queued, or null. */
  refOf(tid: string): TaskRef | null {
    const task = this.#slotRunning(tid)?.task?.assignment ?? this.#queue.find((t) => t.tid === tid);
    return task ? { tid: task.tid, attempt: task.attempt } : null;
  }

  /** Transfers one end of a lane to the worker of `lane.tid`; false when that task does not run here. */
  giveLane(lane: Extract<ToWorker, { type: 'lane-out' | 'lane-in' }>): boolean {
    const worker = this.#slotRunning(lane.tid)?.worker;
    if (!worker) return false;
    worker.post(lane, [lane.channel as unknown as Transferable]);
    return true;
  }

  /** Hands a message to the worker running `tid` (moving the `transfer` buffers); false when that task is not running. */
  post(tid: string, message: ToWorker, transfer?: ArrayBuffer[]): boolean {
    const worker = this.#slotRunning(tid)?.worker;
    if (!worker) return false;
    worker.post(message, transfer);
    return true;
  }

  /** Running and queued tasks: all of them are this host's until they end or are cancelled. */
  held(): TaskRef[] {
    return this.#heldRefs().slice(0, LIMITS.slotsPerHost * 4);
  }

  holds(tid: string): boolean {
    return this.#slotRunning(tid) !== undefined || this.#queue.some((t) => t.tid === tid);
  }

  /** `extras` gives, by tid, what a task resuming from an image starts with. */
  assign(tasks: TaskAssignment[], extras: ReadonlyMap<string, StartExtras> = new Map()): void {
    const held = this.#heldRefs();
    for (const task of tasks) {
      if (held.some((ref) => sameRef(ref, task))) continue;
      held.push({ tid: task.tid, attempt: task.attempt });
      const extra = extras.get(task.tid);
      if (extra) this.#extras.set(task.tid, extra);
      if (task.parent === null) {
        this.#queue.push(task);
        continue;
      }
      const slot: Slot = { worker: null, flag: null, jobId: null, task: null, extra: true };
      this.#extra.push(slot);
      this.#start(slot, task);
    }
    this.#pump();
    this.#options.events.change();
  }

  /**
   * MPVM's freeze: each task of `tids` stops at its next safe point and leaves with the checkpoint
   * it took there, or, past `graceMs` (at once with 0), its worker is terminated and it leaves
   * with none. Queued tasks leave at once. Each is reported through `left`.
   */
  evacuate(tids: ReadonlySet<string> | 'all', graceMs: number): void {
    const chosen = (tid: string) => tids === 'all' || tids.has(tid);
    const queued = this.#queue.filter((task) => chosen(task.tid));
    this.#queue = this.#queue.filter((task) => !chosen(task.tid));
    for (const assignment of queued) {
      this.#extras.delete(assignment.tid);
      this.#options.events.left({ assignment, started: false, frozen: null, obtrusivenessMs: 0 });
    }
    const since = this.#now();
    for (const slot of this.#all()) {
      const task = slot.task;
      if (!task || !chosen(task.assignment.tid)) continue;
      if (graceMs <= 0) {
        if (task.leaving) this.#clock.clear(task.leaving.grace);
        this.#leave(slot, task, null, task.leaving?.since ?? since);
        continue;
      }
      if (task.leaving) continue;
      task.leaving = { since, grace: this.#clock.setTimeout(() => this.#leave(slot, task, null, since), graceMs) };
      if (slot.flag) Atomics.or(slot.flag, 0, SAFE_POINT_FLAGS.freeze);
      else slot.worker?.post({ type: 'freeze', tid: task.assignment.tid });
    }
    this.#pump();
    this.#options.events.change();
  }

  /** Terminates the workers that run nothing now: a paused host keeps no thread alive. */
  dropIdleWorkers(): void {
    for (const slot of this.#slots) if (!slot.task && slot.worker) this.#dropWorker(slot);
    this.#options.events.change();
  }

  /** Queued tasks are dropped, running ones lose their worker; neither reports an outcome. */
  cancel(refs: TaskRef[]): void {
    this.#queue = this.#queue.filter((task) => !refs.some((ref) => sameRef(ref, task)));
    for (const slot of this.#all()) {
      const task = slot.task;
      if (!task || !refs.some((ref) => sameRef(ref, task.assignment))) continue;
      if (task.deadline) this.#clock.clear(task.deadline);
      if (task.leaving) this.#clock.clear(task.leaving.grace);
      this.#vacate(slot);
      this.#dropWorker(slot);
    }
    this.#pump();
    this.#options.events.change();
  }

  /** Ends a running task from the host's side, e.g. when its checkpoint cannot be sent. */
  fail(ref: TaskRef, error: ErrorBody): void {
    const slot = this.#all().find((s) => s.task && sameRef(s.task.assignment, ref));
    if (slot?.task) this.#abort(slot, slot.task, error);
  }

  terminateAll(): void {
    if (this.#persistTimer) this.#clock.clear(this.#persistTimer);
    this.#persistTimer = null;
    this.#queue = [];
    for (const slot of this.#all()) {
      if (slot.task?.deadline) this.#clock.clear(slot.task.deadline);
      if (slot.task?.leaving) this.#clock.clear(slot.task.leaving.grace);
      this.#vacate(slot);
      this.#dropWorker(slot);
    }
  }

  #heldRefs(): TaskRef[] {
    return [...this.running(), ...this.#queue].map(({ tid, attempt }) => ({ tid, attempt }));
  }

  #all(): Slot[] {
    return this.#extra.length ? [...this.#slots, ...this.#extra] : this.#slots;
  }

  #slotRunning(tid: string): Slot | undefined {
    return this.#running.get(tid);
  }

  #vacate(slot: Slot): void {
    if (slot.task && this.#running.get(slot.task.assignment.tid) === slot) this.#running.delete(slot.task.assignment.tid);
    slot.task = null;
  }

  #pump(): void {
    for (let next = this.#queue[0]; next; next = this.#queue[0]) {
      const slot = this.#freeSlotFor(next.jobId);
      if (!slot) return;
      this.#queue.shift();
      this.#start(slot, next);
    }
  }

  #freeSlotFor(jobId: string): Slot | null {
    const free = this.#slots.filter((s) => !s.task);
    return free.find((s) => s.worker && s.jobId === jobId) ?? free.find((s) => !s.worker) ?? free[0] ?? null;
  }

  #start(slot: Slot, assignment: TaskAssignment): void {
    if (slot.worker && slot.jobId !== assignment.jobId) this.#dropWorker(slot);
    const worker = slot.worker ?? this.#spawn(slot);
    slot.jobId = assignment.jobId;
    // A fresh task keeps its first checkpoint at once: its replay log starts from there.
    if (slot.flag) Atomics.store(slot.flag, 0, SAFE_POINT_FLAGS.persist);
    const task: RunningTask = { assignment, progress: 0, deadline: null, leaving: null };
    slot.task = task;
    this.#running.set(assignment.tid, slot);
    if (assignment.timeoutMs !== null) {
      task.deadline = this.#clock.setTimeout(
        () => this.#abort(slot, task, { code: 'E_TASK_TIMEOUT', message: `no result within ${assignment.timeoutMs} ms` }),
        assignment.timeoutMs,
      );
    }
    const extras = this.#extras.get(assignment.tid);
    this.#extras.delete(assignment.tid);
    worker.post({
      type: 'start',
      task: assignment,
      checkpointIntervalMs: this.#options.checkpointIntervalMs(),
      ...extras,
      ...(slot.flag ? { freezeFlag: slot.flag.buffer as SharedArrayBuffer } : {}),
    });
    this.#options.events.started({ tid: assignment.tid, attempt: assignment.attempt });
  }

  #spawn(slot: Slot): TaskWorkerHandle {
    const worker: TaskWorkerHandle = this.#options.spawn({
      message: (data) => {
        if (slot.worker === worker) this.#onWorkerMessage(slot, data);
      },
      error: (code, message) => {
        if (slot.worker !== worker) return;
        if (slot.task) this.#abort(slot, slot.task, { code, message: message.slice(0, LIMITS.logLineChars) });
        else this.#dropWorker(slot);
      },
    });
    slot.worker = worker;
    slot.flag = this.#options.sharedFlags ? new Int32Array(new SharedArrayBuffer(4)) : null;
    if (slot.flag) this.#persistTimer ??= this.#clock.setTimeout(() => this.#raisePersist(), this.#persistEveryMs());
    this.#workersStarted += 1;
    return worker;
  }

  #onWorkerMessage(slot: Slot, data: unknown): void {
    const task = slot.task;
    const parsed = parseWorkerReport(data);
    if (!parsed.ok) {
      if (task) this.#abort(slot, task, parsed.error);
      else this.#dropWorker(slot);
      return;
    }
    const message = parsed.value;
    // A finished task's leftover timers may still report; only the current task counts.
    if (!task || message.tid !== task.assignment.tid) return;
    const { tid, attempt } = task.assignment;
    const events = this.#options.events;
    switch (message.type) {
      case 'checkpoint':
        if (message.frozen) {
          if (task.leaving) this.#leave(slot, task, message, task.leaving.since);
          return;
        }
        events.checkpoint({ tid, attempt }, message);
        return;
      case 'progress':
        task.progress = message.fraction;
        events.progress({ tid, attempt }, message.fraction);
        events.change();
        return;
      case 'log':
        events.log({ tid, attempt }, message.line);
        return;
      case 'send': {
        const checked = checkSend(message.envelope, task.assignment);
        if (checked.ok) events.send({ tid, attempt }, checked.value);
        else this.#abort(slot, task, checked.error);
        return;
      }
      case 'lane-sent': {
        const { sent, error } = checkLaneSent(message.envelopes, task.assignment);
        for (const copy of sent) events.laneSent({ tid, attempt }, copy.message, copy.bytes);
        if (error) this.#abort(slot, task, error);
        return;
      }
      case 'delivered': {
        const checked = checkDelivered(message.entries, tid);
        if (checked.ok) events.delivered({ tid, attempt }, checked.value);
        else this.#abort(slot, task, checked.error);
        return;
      }
      case 'lane-closed':
        events.laneClosed({ tid, attempt }, message.to);
        return;
      case 'request':
        events.request({ tid, attempt }, message.requestId, message.op);
        return;
      case 'done':
        this.#finish(
          slot,
          task,
          message.ok ? { tid, attempt, ok: true, value: message.value } : { tid, attempt, ok: false, error: message.error },
        );
        return;
    }
  }

  #persistEveryMs(): number {
    return Math.max(PERSIST_TICK_MIN_MS, this.#options.checkpointIntervalMs());
  }

  /**
   * A page timer, so a task's loop reads no clock: in a hidden tab it may fire late (browsers
   * slow its timers), which only spaces the kept checkpoints out.
   */
  #raisePersist(): void {
    this.#persistTimer = null;
    let flagged = false;
    for (const slot of this.#all()) {
      if (!slot.flag) continue;
      flagged = true;
      if (slot.task) Atomics.or(slot.flag, 0, SAFE_POINT_FLAGS.persist);
    }
    if (flagged) this.#persistTimer = this.#clock.setTimeout(() => this.#raisePersist(), this.#persistEveryMs());
  }

  /** The task goes with `frozen` (or none): its worker is terminated at once, giving the CPU back. */
  #leave(slot: Slot, task: RunningTask, frozen: WorkerCheckpoint | null, since: number): void {
    if (slot.task !== task) return;
    if (task.leaving) this.#clock.clear(task.leaving.grace);
    if (task.deadline) this.#clock.clear(task.deadline);
    this.#dropWorker(slot);
    this.#vacate(slot);
    const obtrusivenessMs = Math.max(0, this.#now() - since);
    this.#options.events.left({ assignment: task.assignment, started: true, frozen, obtrusivenessMs });
    this.#pump();
    this.#options.events.change();
  }

  #abort(slot: Slot, task: RunningTask, error: ErrorBody): void {
    this.#dropWorker(slot);
    const { tid, attempt } = task.assignment;
    this.#finish(slot, task, { tid, attempt, ok: false, error });
  }

  #finish(slot: Slot, task: RunningTask, outcome: TaskOutcome): void {
    if (slot.task !== task) return;
    if (task.deadline) this.#clock.clear(task.deadline);
    if (task.leaving) this.#clock.clear(task.leaving.grace);
    this.#vacate(slot);
    if (slot.extra) this.#dropWorker(slot);
    this.#options.events.outcome(outcome);
    this.#pump();
    this.#options.events.change();
  }

  #dropWorker(slot: Slot): void {
    slot.worker?.terminate();
    slot.worker = null;
    slot.flag = null;
    slot.jobId = null;
    if (slot.extra) this.#extra = this.#extra.filter((s) => s !== slot);
  }
}
