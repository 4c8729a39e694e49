/*
 * One module past 400 lines, on purpose: a slot's worker, its freeze flags, the tasks handed to
 * it, the queue and the tasks' timers (deadline, freeze grace) change together in every
 * transition — hand out, finish, abort, leave, cancel, withdraw — and each must leave all of
 * them consistent. Split, that one state machine would be spread over files that reach into
 * each other's slots. What a worker says is checked in worker-reports.ts before any of it is touched.
 */
import {
  LIMITS,
  SAFE_POINT_FLAGS,
  type ErrorBody,
  type FromWorker,
  type LaneGift,
  type SealedMessage,
  type TaskAssignment,
  type TaskOp,
  type TaskOutcome,
  type TaskRef,
  type ToWorker,
} from '@webpvm/vm-protocol';
import { BatchDepth } from './batch-depth.ts';
import type { DeliveryReport } from './messaging/inboxes.ts';
import type { SpawnTaskWorker, TaskWorkerHandle } from './task-worker-handle.ts';
import { checkDelivered, checkLaneSent, checkLaneWrote, checkReceiver, checkSend, parseWorkerReport } from './worker-reports.ts';
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
  /** Tasks asked back by `giveBack` that never started here: they report nothing more. */
  givenBack(refs: TaskRef[]): void;
  progress(ref: TaskRef, fraction: number): void;
  log(ref: TaskRef, line: string): void;
  /** The task's worker was handed the task: messages waiting for it can go. */
  started(ref: TaskRef): void;
  /** A message the task sends; `from` is the task itself and `to` a task of its job. */
  send(ref: TaskRef, message: SealedMessage): void;
  /** The task wrote `count` messages to `to` on a lane (messaging/lanes.ts), the last one `seq`. */
  laneWrote(ref: TaskRef, to: string, seq: number, count: number): void;
  /** The task's worker hands over its copy of a message it wrote on a lane (its envelope, `bytes`), not acknowledged yet. */
  laneSent(ref: TaskRef, message: Pick<SealedMessage, 'from' | 'to' | 'seq'>, bytes: Uint8Array): void;
  /** The worker delivered these to the task, in this order (worker.ts `delivered`); a lane's messages come sealed. */
  delivered(ref: TaskRef, entries: DeliveryReport[]): void;
  /** The task's lane to `to` closed. */
  laneClosed(ref: TaskRef, to: string): void;
  /** The task sends again what its sender log holds (worker.ts `resent`): each its own message to a task of its job. */
  resent(ref: TaskRef, messages: SealedMessage[]): void;
  /** What the task's sender log held as it ended (worker.ts `ended-log`), before its outcome: each its own message to a task of its job. */
  endedLog(ref: TaskRef, messages: SealedMessage[]): void;
  /** The task's sender log holds too much for `to` (worker.ts `log-full`). */
  logFull(ref: TaskRef, to: string, dropped: boolean): void;
  request(ref: TaskRef, requestId: number, op: TaskOp): void;
  change(): void;
}

export interface SlotPoolOptions {
  slots: number;
  spawn: SpawnTaskWorker;
  checkpointIntervalMs(): number;
  /** False: workers keep no sender log (`?senderlog=off`, to measure its cost). */
  senderLog?: boolean;
  events: PoolEvents;
  now?: () => number;
  /** Grace periods, deadlines and persist beats must keep time on a hidden page (clock.ts). */
  clock?: Clock;
}

/** What a task starts with besides its assignment when it resumes from an image. */
export type StartExtras = Pick<Extract<ToWorker, { type: 'start' }>, 'stateBuffers' | 'mailbox' | 'delivered' | 'log'>;

export interface RunningTaskView {
  tid: string;
  attempt: number;
  progress: number;
}

interface HandedTask {
  assignment: TaskAssignment;
  /** Its cell of the slot's flags. */
  cell: number;
  progress: number;
  deadline: Timer | null;
  /**
   * Set once the task was asked to leave: when, how long it may take to reach a safe point, and
   * the timer that ends that grace (set once it runs).
   */
  /** Asked to leave at `since`; `stoppedAt`: its worker was ended as it froze (the CPU free from then), its state on the way. */
  leaving: { since: number; graceMs: number; grace: Timer | null; stoppedAt?: number } | null;
  /** Asked back by `giveBack` while it waited in the worker: given back if the worker says it never started. */
  givingBack: boolean;
}

/**
 * One worker, bound to the job whose program it loaded, and the tasks handed to it: the first
 * runs, the others wait in the worker to run after it (worker.ts `starts`), so that small tasks
 * go one after another with no round trip to the page between them.
 */
interface Slot {
  worker: TaskWorkerHandle | null;
  jobId: string | null;
  tasks: HandedTask[];
  /** When the first task started running: how long the job's tasks take. */
  headSince: number;
  /** A slot beyond `slots` for one spawned task, gone when the task ends. */
  extra: boolean;
}

/** The checkpoint interval may be 0 (every call): the page still raises the bit at most this often. */
const PERSIST_TICK_MIN_MS = 20;
/** A task whose worker was ended as it froze waits this long for its state before it leaves without it. */
const STATE_WAIT_MS = 5_000;

const sameRef = (a: TaskRef, b: TaskRef) => a.tid === b.tid && a.attempt === b.attempt;

/**
 * Runs assigned root and bag tasks in at most `slots` Web Workers, one task per worker at a
 * time, each worker handed as many of a job's tasks as take it a few milliseconds (one, for
 * tasks that take longer). A spawned task gets a worker of its own at once, past `slots`: PVM
 * programs spawn tasks that mostly wait for each other's messages, and all of them must run for
 * any to finish — up to LIMITS.spawnedPerHost of them. Task code is untrusted: everything a
 * worker says is parsed, and a worker that says something malformed or crashes fails its task
 * and is thrown away (the tasks waiting behind it go back to the queue).
 */
export class SlotPool {
  #options: SlotPoolOptions;
  #slots: Slot[];
  #extra: Slot[] = [];
  /** Slots by the tids handed to them: every message a task sends or receives looks its task up. */
  #running = new Map<string, Slot>();
  /** Per job, how long its tasks take (ms, a moving mean): how many of them a worker is handed. */
  #depth = new BatchDepth();
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
    this.#slots = Array.from({ length: options.slots }, () => this.#newSlot(false));
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

  /** The tasks running now: the first handed to each worker. */
  running(): RunningTaskView[] {
    return this.#all().flatMap((s) => {
      const head = s.tasks[0];
      return head ? [{ tid: head.assignment.tid, attempt: head.assignment.attempt, progress: head.progress }] : [];
    });
  }

  /** The attempt of `tid` this pool holds, handed to a worker or queued, or null. */
  refOf(tid: string): TaskRef | null {
    const task = this.#handed(tid)?.assignment ?? this.#queue.find((t) => t.tid === tid);
    return task ? { tid: task.tid, attempt: task.attempt } : null;
  }

  /** Has stream `stream` of `link` handed to the worker of `gift.tid` as a lane's end; false when that task does not run here. */
  giveLane(link: number, stream: number, gift: LaneGift, made: (ok: boolean) => void): boolean {
    const worker = this.#runningSlot(gift.tid)?.worker;
    if (!worker) return false;
    worker.lane(link, stream, gift, made);
    return true;
  }

  /** Hands a message to the worker running `tid` (moving the `transfer` buffers); false when that task is not running. */
  post(tid: string, message: ToWorker, transfer?: ArrayBuffer[]): boolean {
    const worker = this.#runningSlot(tid)?.worker;
    if (!worker) return false;
    worker.post(message, transfer);
    return true;
  }

  /** The task keeps a checkpoint at its next safe point (a sender's log for it is full); false where it does not run. */
  checkpointNow(tid: string): boolean {
    const slot = this.#runningSlot(tid);
    const task = slot?.tasks.find((t) => t.assignment.tid === tid);
    if (!slot?.worker?.cells || !task) return false;
    slot.worker.cells.or(task.cell, SAFE_POINT_FLAGS.persist);
    return true;
  }

  /** Running, handed and queued tasks: all of them are this host's until they end or are cancelled. */
  held(): TaskRef[] {
    return this.#heldRefs().slice(0, LIMITS.heldPerHost);
  }

  holds(tid: string): boolean {
    return this.#running.has(tid) || this.#queue.some((t) => t.tid === tid);
  }

  /** `extras` gives, by tid, what a task resuming from an image starts with. */
  assign(tasks: TaskAssignment[], extras: ReadonlyMap<string, StartExtras> = new Map()): void {
    const held = this.#heldRefs();
    for (const task of tasks) {
      if (held.some((ref) => sameRef(ref, task))) continue;
      held.push({ tid: task.tid, attempt: task.attempt });
      const extra = extras.get(task.tid);
      if (extra) this.#extras.set(task.tid, extra);
      // A spawned task past LIMITS.spawnedPerHost (more than the coordinator places here) waits for a slot.
      if (task.parent === null || this.#extra.length >= LIMITS.spawnedPerHost) {
        this.#queue.push(task);
        continue;
      }
      const slot = this.#newSlot(true);
      this.#extra.push(slot);
      this.#hand(slot, [task]);
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
    for (const assignment of queued) this.#leftUnstarted(assignment);
    const since = this.#now();
    for (const slot of this.#all()) {
      const [head, ...waiting] = slot.tasks;
      const withdraw: string[] = [];
      for (const task of waiting) {
        if (!chosen(task.assignment.tid) || task.leaving) continue;
        // Not started: it comes back (`withdrawn`); started meanwhile, it freezes at its first safe point.
        task.leaving = { since, graceMs, grace: null };
        slot.worker?.cells?.or(task.cell, SAFE_POINT_FLAGS.freeze);
        withdraw.push(task.assignment.tid);
      }
      if (withdraw.length) slot.worker?.post({ type: 'withdraw', tids: withdraw });
      if (!head || !chosen(head.assignment.tid)) continue;
      if (graceMs <= 0) {
        this.#leave(slot, head, null, head.leaving?.since ?? since);
        continue;
      }
      if (head.leaving) continue;
      head.leaving = { since, graceMs, grace: null };
      this.#freeze(slot, head);
    }
    this.#pump();
    this.#options.events.change();
  }

  /**
   * The coordinator wants these tasks back for another host, if they have not started: those
   * queued here go at once, those waiting in a worker once it gives them back (`withdrawn`), each
   * through `givenBack`; a task that started, or resumes from an image, stays. `keep` names those
   * the host must keep whatever their state (messages wait here for them).
   */
  giveBack(refs: TaskRef[], keep: (tid: string) => boolean): void {
    const asked = (ref: TaskRef) => refs.some((r) => sameRef(r, ref)) && !keep(ref.tid) && !this.#extras.has(ref.tid);
    const queued = this.#queue.filter(asked);
    this.#queue = this.#queue.filter((task) => !queued.includes(task));
    for (const slot of this.#all()) {
      const waiting = slot.tasks.slice(1).filter((task) => asked(task.assignment) && !task.leaving && !task.givingBack);
      for (const task of waiting) task.givingBack = true;
      if (waiting.length) slot.worker?.post({ type: 'withdraw', tids: waiting.map((t) => t.assignment.tid) });
    }
    if (queued.length) this.#options.events.givenBack(queued.map(({ tid, attempt }) => ({ tid, attempt })));
    this.#options.events.change();
  }

  /** Terminates the workers that run nothing now: a paused host keeps no thread alive. */
  dropIdleWorkers(): void {
    for (const slot of this.#slots) if (!slot.tasks.length && slot.worker) this.#dropWorker(slot);
    this.#options.events.change();
  }

  /** Queued tasks are dropped, running ones lose their worker, waiting ones are withdrawn; none reports an outcome. */
  cancel(refs: TaskRef[]): void {
    const cancelled = (ref: TaskRef) => refs.some((r) => sameRef(r, ref));
    this.#queue = this.#queue.filter((task) => !cancelled(task));
    for (const slot of this.#all()) {
      const [head, ...waiting] = slot.tasks;
      const withdrawn = waiting.filter((task) => cancelled(task.assignment));
      for (const task of withdrawn) this.#remove(slot, task);
      // If the worker started one meanwhile, what it says of it is ignored: it is no longer handed.
      if (withdrawn.length) slot.worker?.post({ type: 'withdraw', tids: withdrawn.map((t) => t.assignment.tid) });
      if (!head || !cancelled(head.assignment)) continue;
      this.#remove(slot, head);
      this.#dropWorker(slot);
    }
    this.#pump();
    this.#options.events.change();
  }

  /** Ends a running task from the host's side, e.g. when its checkpoint cannot be sent. */
  fail(ref: TaskRef, error: ErrorBody): void {
    const slot = this.#all().find((s) => s.tasks[0] && sameRef(s.tasks[0].assignment, ref));
    if (slot?.tasks[0]) this.#abort(slot, slot.tasks[0], error);
  }

  terminateAll(): void {
    if (this.#persistTimer) this.#clock.clear(this.#persistTimer);
    this.#persistTimer = null;
    this.#queue = [];
    for (const slot of this.#all()) {
      for (const task of [...slot.tasks]) this.#remove(slot, task);
      this.#dropWorker(slot);
    }
  }

  #heldRefs(): TaskRef[] {
    return [...this.#all().flatMap((s) => s.tasks.map((t) => t.assignment)), ...this.#queue].map(({ tid, attempt }) => ({ tid, attempt }));
  }

  #all(): Slot[] {
    return this.#extra.length ? [...this.#slots, ...this.#extra] : this.#slots;
  }

  #newSlot(extra: boolean): Slot {
    return { worker: null, jobId: null, tasks: [], headSince: 0, extra };
  }

  #handed(tid: string): HandedTask | undefined {
    return this.#running.get(tid)?.tasks.find((t) => t.assignment.tid === tid);
  }

  /** The slot whose running task is `tid` (not one waiting behind it). */
  #runningSlot(tid: string): Slot | undefined {
    const slot = this.#running.get(tid);
    return slot?.tasks[0]?.assignment.tid === tid ? slot : undefined;
  }

  /** The task is no longer this slot's: its timers stop. */
  #remove(slot: Slot, task: HandedTask): void {
    const at = slot.tasks.indexOf(task);
    if (at === -1) return;
    slot.tasks.splice(at, 1);
    if (this.#running.get(task.assignment.tid) === slot) this.#running.delete(task.assignment.tid);
    if (task.deadline) this.#clock.clear(task.deadline);
    if (task.leaving?.grace) this.#clock.clear(task.leaving.grace);
  }

  #pump(): void {
    for (let next = this.#queue[0]; next; next = this.#queue[0]) {
      const depth = this.#depth.of(next.jobId);
      const slot = this.#slotFor(next.jobId, depth);
      if (!slot) return;
      let take = 0;
      const room = depth - slot.tasks.length;
      while (take < room && this.#queue[take]?.jobId === next.jobId) take++;
      this.#hand(slot, this.#queue.splice(0, take));
    }
  }

  /** An idle slot (rather one whose worker has the job's program), else one of the job with room behind its running task. */
  #slotFor(jobId: string, depth: number): Slot | null {
    const free = this.#slots.filter((s) => !s.tasks.length);
    const idle = free.find((s) => s.worker && s.jobId === jobId) ?? free.find((s) => !s.worker) ?? free[0];
    return idle ?? this.#slots.find((s) => s.jobId === jobId && s.tasks.length < depth) ?? null;
  }

  /** Hands tasks of one job to the slot's worker, to run after what it holds. */
  #hand(slot: Slot, assignments: TaskAssignment[]): void {
    const jobId = assignments[0]!.jobId;
    if (slot.worker && slot.jobId !== jobId) this.#dropWorker(slot);
    const worker = slot.worker ?? this.#spawn(slot, assignments[0]!);
    slot.jobId = jobId;
    const used = new Set(slot.tasks.map((t) => t.cell));
    const checkpointIntervalMs = this.#options.checkpointIntervalMs();
    const senderLog = this.#options.senderLog === false ? { senderLog: false } : {};
    const starts = assignments.map((assignment) => {
      let cell = 0;
      while (used.has(cell)) cell++;
      used.add(cell);
      // A fresh task keeps its first checkpoint at once: its replay log starts from there.
      worker.cells?.store(cell, SAFE_POINT_FLAGS.persist);
      slot.tasks.push({ assignment, cell, progress: 0, deadline: null, leaving: null, givingBack: false });
      this.#running.set(assignment.tid, slot);
      const extras = this.#extras.get(assignment.tid);
      this.#extras.delete(assignment.tid);
      return { type: 'start', task: assignment, checkpointIntervalMs, ...senderLog, ...extras, ...(worker.cells ? { flag: cell } : {}) } as const;
    });
    worker.post({ type: 'starts', tasks: starts });
    if (slot.tasks.length === starts.length) this.#headStarted(slot);
  }

  /** The slot's first task runs now: its deadline and grace count from here, and messages waiting for it can go. */
  #headStarted(slot: Slot): void {
    const task = slot.tasks[0]!;
    slot.headSince = this.#now();
    const { assignment } = task;
    if (assignment.timeoutMs !== null) {
      task.deadline = this.#clock.setTimeout(
        () => this.#abort(slot, task, { code: 'E_TASK_TIMEOUT', message: `no result within ${assignment.timeoutMs} ms` }),
        assignment.timeoutMs,
      );
    }
    this.#options.events.started({ tid: assignment.tid, attempt: assignment.attempt });
    if (task.leaving) this.#freeze(slot, task);
  }

  /** MPVM's freeze for the running task: stop at the next safe point, or be terminated once the grace is over. */
  #freeze(slot: Slot, task: HandedTask): void {
    const leaving = task.leaving!;
    this.#clock.clear(leaving.grace);
    const waitMs = leaving.stoppedAt === undefined ? leaving.graceMs : STATE_WAIT_MS;
    leaving.grace = this.#clock.setTimeout(() => this.#leave(slot, task, null, leaving.since), waitMs);
    const cells = slot.worker?.cells;
    if (cells) cells.or(task.cell, SAFE_POINT_FLAGS.freeze);
    else slot.worker?.post({ type: 'freeze', tid: task.assignment.tid });
  }

  #leftUnstarted(assignment: TaskAssignment): void {
    this.#extras.delete(assignment.tid);
    this.#options.events.left({ assignment, started: false, frozen: null, obtrusivenessMs: 0 });
  }

  #spawn(slot: Slot, { jobId, programUrl }: TaskAssignment): TaskWorkerHandle {
    const worker: TaskWorkerHandle = this.#options.spawn({ jobId, programUrl }, {
      message: (data) => {
        if (slot.worker === worker) this.#onWorkerMessage(slot, data);
      },
      error: (code, message) => {
        if (slot.worker !== worker) return;
        const head = slot.tasks[0];
        if (head) this.#abort(slot, head, { code, message: message.slice(0, LIMITS.logLineChars) });
        else this.#dropWorker(slot);
      },
      stopped: (at) => {
        if (slot.worker === worker) this.#stopped(slot, at);
      },
    });
    slot.worker = worker;
    if (worker.cells) {
      this.#persistTimer ??= this.#clock.setTimeout(() => this.#raisePersist(), this.#persistEveryMs());
    }
    this.#workersStarted += 1;
    return worker;
  }

  #onWorkerMessage(slot: Slot, data: unknown): void {
    const parsed = parseWorkerReport(data);
    if (!parsed.ok) {
      const head = slot.tasks[0];
      if (head) this.#abort(slot, head, parsed.error);
      else this.#dropWorker(slot);
      return;
    }
    const message = parsed.value;
    if (message.type === 'dones') {
      this.#measure(slot, message.items.length);
      for (const done of message.items) this.#done(slot, done);
      this.#pump();
      this.#options.events.change();
      return;
    }
    if (message.type === 'withdrawn') {
      this.#withdrawn(slot, message.tids);
      return;
    }
    const task = slot.tasks[0];
    // A finished task's leftover timers may still report; only the running task counts.
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
      case 'lane-wrote': {
        const checked = checkLaneWrote(message.pairs, task.assignment);
        if (checked.ok) for (const { to, seq, count } of checked.value) events.laneWrote({ tid, attempt }, to, seq, count);
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
      case 'resent':
      case 'ended-log': {
        const messages: SealedMessage[] = [];
        for (const envelope of message.envelopes) {
          const checked = checkSend(envelope, task.assignment);
          if (!checked.ok) return this.#abort(slot, task, checked.error);
          messages.push(checked.value);
        }
        if (message.type === 'resent') events.resent({ tid, attempt }, messages);
        else events.endedLog({ tid, attempt }, messages);
        return;
      }
      case 'log-full': {
        const checked = checkReceiver(message.to, task.assignment);
        if (checked.ok) events.logFull({ tid, attempt }, checked.value, message.dropped);
        else this.#abort(slot, task, checked.error);
        return;
      }
      case 'request':
        events.request({ tid, attempt }, message.requestId, message.op);
        return;
      case 'done':
        this.#measure(slot, 1);
        this.#done(slot, message);
        this.#pump();
        this.#options.events.change();
        return;
    }
  }

  /**
   * How long the job's tasks take, from `count` outcomes that came together: the time since the
   * first of them started, shared out. Spawned tasks, in slots of their own, say nothing of the queue's.
   */
  #measure(slot: Slot, count: number): void {
    const head = slot.tasks[0];
    if (slot.extra || !head) return;
    this.#depth.measured(head.assignment.jobId, this.#now() - slot.headSince, count);
  }

  /** The running task's outcome; one for a task no longer handed here (cancelled meanwhile) is ignored. The caller pumps. */
  #done(slot: Slot, done: Extract<FromWorker, { type: 'done' }>): void {
    const task = slot.tasks[0];
    if (!task || done.tid !== task.assignment.tid) return;
    const { tid, attempt } = task.assignment;
    this.#remove(slot, task);
    if (slot.extra) this.#dropWorker(slot);
    this.#options.events.outcome(done.ok ? { tid, attempt, ok: true, value: done.value } : { tid, attempt, ok: false, error: done.error });
    // The worker started the next one as this one ended.
    if (slot.tasks.length) this.#headStarted(slot);
  }

  /**
   * Tasks the worker gave back before starting them: those asked to leave leave, those asked
   * back by the coordinator go back to it, the others queue again.
   */
  #withdrawn(slot: Slot, tids: string[]): void {
    const unstarted: HandedTask[] = [];
    for (const tid of tids) {
      const task = slot.tasks.find((t, i) => i > 0 && t.assignment.tid === tid);
      if (!task) continue;
      this.#remove(slot, task);
      unstarted.push(task);
    }
    this.#unstarted(unstarted);
    this.#pump();
    this.#options.events.change();
  }

  /** Handed tasks that never started, out of their slot: each leaves, goes back to the coordinator or queues again, at the front. */
  #unstarted(tasks: HandedTask[]): void {
    const back: TaskAssignment[] = [];
    const given: TaskRef[] = [];
    for (const task of tasks) {
      if (task.leaving) this.#leftUnstarted(task.assignment);
      else if (task.givingBack) given.push({ tid: task.assignment.tid, attempt: task.assignment.attempt });
      else back.push(task.assignment);
    }
    this.#queue.unshift(...back);
    if (given.length) this.#options.events.givenBack(given);
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
      const cells = slot.worker?.cells;
      if (!cells) continue;
      flagged = true;
      const head = slot.tasks[0];
      if (head) cells.or(head.cell, SAFE_POINT_FLAGS.persist);
    }
    if (flagged) this.#persistTimer = this.#clock.setTimeout(() => this.#raisePersist(), this.#persistEveryMs());
  }

  /**
   * The worker was ended as its task froze (a sandbox frame ends it as the state leaves it): the
   * CPU was free from `at`, and the state, posted before, is on its way — from another process a
   * large one takes longer than the freeze's grace. A worker that stops with no task asked to
   * leave did so on task code's word: its task fails.
   */
  #stopped(slot: Slot, at: number): void {
    const leaving = slot.tasks.filter((task) => task.leaving);
    if (!leaving.length) {
      const head = slot.tasks[0];
      if (head) this.#abort(slot, head, { code: 'E_TASK_FAILED', message: 'the task worker ended itself without being asked to leave' });
      else this.#dropWorker(slot);
      return;
    }
    for (const task of leaving) task.leaving!.stoppedAt = Math.max(task.leaving!.since, at);
    if (slot.tasks[0]?.leaving) this.#freeze(slot, slot.tasks[0]);
  }

  /** The running task goes with `frozen` (or none): its worker is terminated at once, giving the CPU back. */
  #leave(slot: Slot, task: HandedTask, frozen: WorkerCheckpoint | null, since: number): void {
    if (slot.tasks[0] !== task) return;
    this.#remove(slot, task);
    this.#dropWorker(slot);
    const obtrusivenessMs = Math.max(0, (task.leaving?.stoppedAt ?? this.#now()) - since);
    this.#options.events.left({ assignment: task.assignment, started: true, frozen, obtrusivenessMs });
    this.#pump();
    this.#options.events.change();
  }

  #abort(slot: Slot, task: HandedTask, error: ErrorBody): void {
    if (slot.tasks[0] !== task) return;
    this.#remove(slot, task);
    this.#dropWorker(slot);
    const { tid, attempt } = task.assignment;
    this.#options.events.outcome({ tid, attempt, ok: false, error });
    this.#pump();
    this.#options.events.change();
  }

  /**
   * The worker is terminated, its running task already accounted for by the caller. The tasks
   * still handed to it were waiting behind that one and never started (`#unstarted`).
   */
  #dropWorker(slot: Slot): void {
    slot.worker?.terminate();
    slot.worker = null;
    slot.jobId = null;
    const unstarted = [...slot.tasks];
    for (const task of unstarted) this.#remove(slot, task);
    this.#unstarted(unstarted);
    if (slot.extra) this.#extra = this.#extra.filter((s) => s !== slot);
  }
}
