import {
  FromWorker,
  LIMITS,
  describeIssues,
  type Checkpoint,
  type ErrorBody,
  type TaskAssignment,
  type TaskOutcome,
  type TaskRef,
} from '@webpvm/vm-protocol';
import type { SpawnTaskWorker, TaskWorkerHandle } from './task-worker-handle.ts';

export interface PoolEvents {
  /** A task ended with a result or an error; it is no longer held by the pool. */
  outcome(outcome: TaskOutcome): void;
  checkpoint(ref: TaskRef, checkpoint: Checkpoint): void;
  progress(ref: TaskRef, fraction: number): void;
  log(ref: TaskRef, line: string): void;
  change(): void;
}

export interface SlotPoolOptions {
  slots: number;
  spawn: SpawnTaskWorker;
  checkpointIntervalMs(): number;
  events: PoolEvents;
}

export interface RunningTaskView {
  tid: string;
  attempt: number;
  progress: number;
}

interface RunningTask {
  assignment: TaskAssignment;
  progress: number;
  deadline: ReturnType<typeof setTimeout> | null;
}

/** One worker at a time; the worker stays bound to the job whose program it loaded. */
interface Slot {
  worker: TaskWorkerHandle | null;
  jobId: string | null;
  task: RunningTask | null;
}

const sameRef = (a: TaskRef, b: TaskRef) => a.tid === b.tid && a.attempt === b.attempt;

/**
 * Runs assigned tasks in at most `slots` Web Workers, one task per worker at a time. Task
 * code is untrusted: everything a worker says is parsed, and a worker that says something
 * malformed or crashes fails its task and is thrown away.
 */
export class SlotPool {
  #options: SlotPoolOptions;
  #slots: Slot[];
  #queue: TaskAssignment[] = [];
  #workersStarted = 0;

  constructor(options: SlotPoolOptions) {
    this.#options = options;
    this.#slots = Array.from({ length: options.slots }, () => ({ worker: null, jobId: null, task: null }));
  }

  get queued(): number {
    return this.#queue.length;
  }

  get workersStarted(): number {
    return this.#workersStarted;
  }

  running(): RunningTaskView[] {
    return this.#slots.flatMap((s) =>
      s.task ? [{ tid: s.task.assignment.tid, attempt: s.task.assignment.attempt, progress: s.task.progress }] : [],
    );
  }

  /** Running and queued tasks: all of them are this host's until they end or are cancelled. */
  held(): TaskRef[] {
    const refs = [...this.running(), ...this.#queue].map(({ tid, attempt }) => ({ tid, attempt }));
    return refs.slice(0, LIMITS.slotsPerHost * 4);
  }

  assign(tasks: TaskAssignment[]): void {
    const held = this.held();
    for (const task of tasks) {
      if (held.some((ref) => sameRef(ref, task))) continue;
      this.#queue.push(task);
      held.push({ tid: task.tid, attempt: task.attempt });
    }
    this.#pump();
    this.#options.events.change();
  }

  /** Queued tasks are dropped, running ones lose their worker; neither reports an outcome. */
  cancel(refs: TaskRef[]): void {
    this.#queue = this.#queue.filter((task) => !refs.some((ref) => sameRef(ref, task)));
    for (const slot of this.#slots) {
      const task = slot.task;
      if (!task || !refs.some((ref) => sameRef(ref, task.assignment))) continue;
      if (task.deadline) clearTimeout(task.deadline);
      slot.task = null;
      this.#dropWorker(slot);
    }
    this.#pump();
    this.#options.events.change();
  }

  /** Ends a running task from the host's side, e.g. when its checkpoint cannot be sent. */
  fail(ref: TaskRef, error: ErrorBody): void {
    const slot = this.#slots.find((s) => s.task && sameRef(s.task.assignment, ref));
    if (slot?.task) this.#abort(slot, slot.task, error);
  }

  terminateAll(): void {
    this.#queue = [];
    for (const slot of this.#slots) {
      if (slot.task?.deadline) clearTimeout(slot.task.deadline);
      slot.task = null;
      this.#dropWorker(slot);
    }
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
    const task: RunningTask = { assignment, progress: 0, deadline: null };
    slot.task = task;
    if (assignment.timeoutMs !== null) {
      task.deadline = setTimeout(
        () => this.#abort(slot, task, { code: 'E_TASK_TIMEOUT', message: `no result within ${assignment.timeoutMs} ms` }),
        assignment.timeoutMs,
      );
    }
    worker.post({ type: 'start', task: assignment, checkpointIntervalMs: this.#options.checkpointIntervalMs() });
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
    this.#workersStarted += 1;
    return worker;
  }

  #onWorkerMessage(slot: Slot, data: unknown): void {
    const task = slot.task;
    const parsed = FromWorker.safeParse(data);
    if (!parsed.success) {
      const message = `bad message from the task worker: ${describeIssues(parsed.error)}`.slice(0, LIMITS.logLineChars);
      if (task) this.#abort(slot, task, { code: 'E_BAD_FRAME', message });
      else this.#dropWorker(slot);
      return;
    }
    const message = parsed.data;
    // A finished task's leftover timers may still report; only the current task counts.
    if (!task || message.tid !== task.assignment.tid) return;
    const { tid, attempt } = task.assignment;
    const events = this.#options.events;
    switch (message.type) {
      case 'checkpoint':
        events.checkpoint({ tid, attempt }, message.checkpoint);
        return;
      case 'progress':
        task.progress = message.fraction;
        events.progress({ tid, attempt }, message.fraction);
        events.change();
        return;
      case 'log':
        events.log({ tid, attempt }, message.line);
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

  #abort(slot: Slot, task: RunningTask, error: ErrorBody): void {
    this.#dropWorker(slot);
    const { tid, attempt } = task.assignment;
    this.#finish(slot, task, { tid, attempt, ok: false, error });
  }

  #finish(slot: Slot, task: RunningTask, outcome: TaskOutcome): void {
    if (slot.task !== task) return;
    if (task.deadline) clearTimeout(task.deadline);
    slot.task = null;
    this.#options.events.outcome(outcome);
    this.#pump();
    this.#options.events.change();
  }

  #dropWorker(slot: Slot): void {
    slot.worker?.terminate();
    slot.worker = null;
    slot.jobId = null;
  }
}
