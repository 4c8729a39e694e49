import { unsealMessage, type TaskMessage } from '@webpvm/vm-protocol/envelope';
import { WebpvmError, describeIssues, type ErrorCode } from '@webpvm/vm-protocol/errors';
import type { LaneChannel } from '@webpvm/vm-protocol/lane';
import { LIMITS } from '@webpvm/vm-protocol/limits';
import { decodeValue, encodeValue } from '@webpvm/vm-protocol/value-codec';
import { SAFE_POINT_FLAGS, ToWorker, type FromWorker } from '@webpvm/vm-protocol/worker';
import type { TaskContext, TaskFunction } from '../ctx.ts';
import { Rng } from './determinism.ts';
import { toJsonValue } from './json-value.ts';
import { formatLogLine, truncateLine } from './log-line.ts';
import { Arrivals } from './arrivals.ts';
import { Mailbox } from './mailbox.ts';
import { createMessaging, type TaskMessaging } from './task-messaging.ts';
import { SenderLog } from './sender-log.ts';
import { socketLane } from './socket-lane.ts';

export { Rng, taskSeed, type RngState } from './determinism.ts';

/**
 * What the runtime needs from where it runs: `self` in a browser Web Worker, or a small adapter
 * around `parentPort` in a Node worker_thread.
 */
export interface WorkerScope {
  /** `transfer` moves buffers instead of copying them (a frozen task never touches its state again). */
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  /**
   * Posts a frozen task's state, the worker's last message: nothing runs here after it, so the
   * worker may end at once instead of once its host has taken the state in (a sandbox frame ends
   * it and sends the state on itself). Without it the state is posted like any message.
   */
  frozen?(message: unknown, transfer: ArrayBuffer[]): void;
}

/** Where the worker runs, when it is not in the host's own origin. */
export interface TaskWorkerOptions {
  /** Imports a program's module by its URL; by default `import(url)`. */
  importProgram?: (url: string) => Promise<ProgramModule>;
  /** The worker's safe-point cells (vm-protocol SAFE_POINT_FLAGS), where it has them. */
  flags?: SharedArrayBuffer | null;
}

/** The least time between two progress messages of one task: the dashboard needs no more. */
const PROGRESS_INTERVAL_MS = 200;

const RESOLVED = Promise.resolve();
/** Where a frozen task waits: its worker is about to be terminated. */
const FROZEN = new Promise<void>(() => {});

type StartTask = Extract<ToWorker, { type: 'start' }>;
type Done = Extract<FromWorker, { type: 'done' }>;
export type ProgramModule = Record<string, unknown>;
type Post = (message: FromWorker, transfer?: ArrayBuffer[]) => void;

/**
 * Outcomes of a `starts` run go together, once the run is over or the oldest has waited this
 * long: each report costs the host and the coordinator ~2 ms of CPU in all, so short tasks
 * share one; a long task after short ones holds their outcomes back no longer than this (a
 * worker's timers are not throttled). The host hands about half a second of work at once
 * (slot-pool.ts): it has more before this run is over.
 */
const DONES_WAIT_MS = 300;
type Handlers = { [T in ToWorker['type']]: (message: Extract<ToWorker, { type: T }>) => void };
type LaneGiven = Extract<ToWorker, { type: 'lane-out' | 'lane-in' }>;
/** Lanes a worker keeps for tasks it has not started yet (a lane is one per pair, a worker's tasks few at once). */
const MAX_EARLY_LANES = 256;

function openLane(task: { messaging: TaskMessaging; arrivals: Arrivals }, lane: LaneGiven): void {
  if (lane.type === 'lane-out') task.messaging.openLane(lane.to, lane.channel);
  else task.arrivals.openLane(lane.from, lane.channel);
}

/**
 * Runs tasks in this worker as `start` messages arrive. Tasks interleave at their awaits (a task
 * waiting in `recv` leaves the worker to the others), and messages and replies for a task are
 * handled at once, never behind a running task. The host decides how many tasks share a worker.
 * Tasks handed in `starts` run one after another instead, their outcomes reported in batches.
 * Everything about one task lives in that task's context; only the imported programs are kept,
 * by URL, and the mailboxes, by tid.
 */
export function runTaskWorker(scope: WorkerScope, options: TaskWorkerOptions = {}): void {
  /** Outcomes of `starts` tasks not reported yet: whatever else the worker posts goes after them. */
  let dones: Done[] = [];
  let donesSince = 0;
  let donesTimer: ReturnType<typeof setTimeout> | null = null;
  const flushDones = (): void => {
    if (donesTimer !== null) clearTimeout(donesTimer);
    donesTimer = null;
    if (!dones.length) return;
    const items = dones;
    dones = [];
    scope.postMessage({ type: 'dones', items } satisfies FromWorker);
  };
  const post: Post = (message, transfer) => {
    flushDones();
    scope.postMessage(message, transfer);
  };
  const postLast: Post = (message, transfer = []) => {
    flushDones();
    if (scope.frozen) scope.frozen(message, transfer);
    else scope.postMessage(message, transfer);
  };
  /** The worker's safe-point cells, where it has them. */
  const flagCells: Int32Array | null = options.flags ? new Int32Array(options.flags) : null;
  const importProgram = options.importProgram ?? ((url: string) => import(/* @vite-ignore */ url) as Promise<ProgramModule>);
  /** Tasks of `starts` not started yet, and whether one of them runs now. */
  const queued: StartTask[] = [];
  let queueBusy = false;
  const runQueued = (): void => {
    const next = queueBusy ? undefined : queued.shift();
    if (!next) {
      if (!queueBusy) flushDones();
      return;
    }
    queueBusy = true;
    launch(next, (done) => {
      if (!dones.length) donesSince = performance.now();
      dones.push(done);
      if (!queued.length || performance.now() - donesSince >= DONES_WAIT_MS) flushDones();
      else donesTimer ??= setTimeout(flushDones, DONES_WAIT_MS);
      queueBusy = false;
      runQueued();
    });
  };
  const programs = new Map<string, Promise<ProgramModule>>();
  /** Tasks by tid, from their start. */
  const running = new Map<string, { messaging: TaskMessaging; arrivals: Arrivals }>();
  /** Envelopes delivered before their task's start, handed to it as it starts. */
  const early = new Map<string, Uint8Array[]>();
  /**
   * Lanes that came before their task's start, opened as it starts: a sandbox frame hands lanes
   * over apart from the host's messages, so one may overtake the `starts` it belongs to. Closing
   * it instead would be worse than slow: a lane closed before its sender's end is made leaves that
   * end open on a stream nobody reads. One whose other end closes meanwhile leaves the list.
   */
  const earlyLanes = new Map<string, LaneGiven[]>();
  /** Tasks asked to freeze by message, where no shared flag exists. */
  const freezing = new Set<string>();

  const load = (url: string): Promise<ProgramModule> => {
    let program = programs.get(url);
    if (!program) {
      program = importProgram(url);
      programs.set(url, program);
      // A failed import may be a passing network fault: let the next task try again.
      program.catch(() => programs.delete(url));
    }
    return program;
  };

  /** Starts one task; `finish` reports its outcome once it has ended (a frozen task never ends). */
  const launch = (start: StartTask, finish: (done: Done) => void): void => {
    const { tid, resume } = start.task;
    // The host checked each envelope all through. One that still does not decode would shift the numbering its replay log follows.
    const resumed = (start.mailbox ?? []).map(unsealMessage);
    if (resumed.some((message) => message?.to !== tid)) {
      early.delete(tid);
      finish({ type: 'done', tid, ok: false, error: { code: 'E_BAD_FRAME', message: 'a message of the resumed mailbox does not decode as one to this task' } });
      return;
    }
    const mailbox = new Mailbox();
    // A resumed mailbox is in the host's replay log already: it is not reported again.
    mailbox.deliver(resumed as TaskMessage[]);
    const arrivals = new Arrivals(tid, mailbox, post, start.delivered);
    arrivals.fromHost(early.get(tid) ?? []);
    early.delete(tid);
    const counters = resume && { sent: resume.sent ?? [], requests: resume.requests ?? 0 };
    const log =
      start.senderLog === false
        ? null
        : new SenderLog(
            (to) => post({ type: 'log-full', tid, to, dropped: false }),
            (to) => post({ type: 'log-full', tid, to, dropped: true }),
          );
    log?.restore(start.log ?? []);
    const messaging = createMessaging(start.task, mailbox, post, counters ?? undefined, log);
    // Receivers lost with this task's last host may restart from checkpoints older than what it sent them.
    if (start.task.recovering) messaging.resend();
    running.set(tid, { messaging, arrivals });
    for (const lane of earlyLanes.get(tid) ?? []) if (lane.channel.readyState !== 'closed') openLane({ messaging, arrivals }, lane);
    earlyLanes.delete(tid);
    const end = (): void => {
      arrivals.flush();
      arrivals.close();
      messaging.ended();
      messaging.close();
      running.delete(tid);
      freezing.delete(tid);
    };
    const flag = flagCells && start.flag !== undefined ? { cells: flagCells, index: start.flag } : null;
    const safePoint = { messaging, mailbox, arrivals, flag, freezeAsked: () => freezing.has(tid), postLast };
    runTask(start, load, safePoint, end, post, finish).catch((error: unknown) =>
      console.error('webpvm runtime: cannot report to the host', error),
    );
  };

  const laneGiven = (lane: LaneGiven): void => {
    const task = running.get(lane.tid);
    if (task) return openLane(task, lane);
    let kept = 0;
    for (const waiting of earlyLanes.values()) kept += waiting.length;
    if (kept >= MAX_EARLY_LANES) return lane.channel.close();
    earlyLanes.set(lane.tid, [...(earlyLanes.get(lane.tid) ?? []), lane]);
    lane.channel.addEventListener('close', () => {
      const waiting = earlyLanes.get(lane.tid);
      if (!waiting?.includes(lane)) return;
      if (waiting.length === 1) earlyLanes.delete(lane.tid);
      else earlyLanes.set(lane.tid, waiting.filter((l) => l !== lane));
    });
  };

  const handlers: Handlers = {
    start: (start) => launch(start, post),
    starts: ({ tasks }) => {
      queued.push(...tasks);
      runQueued();
    },
    withdraw: ({ tids }) => {
      const asked = new Set(tids);
      const withdrawn = queued.filter((start) => asked.has(start.task.tid)).map((start) => start.task.tid);
      for (let i = queued.length - 1; i >= 0; i--) if (asked.has(queued[i]!.task.tid)) queued.splice(i, 1);
      for (const tid of withdrawn) for (const lane of earlyLanes.get(tid) ?? []) lane.channel.close();
      post({ type: 'withdrawn', tids: withdrawn });
    },
    deliver: (deliver) => {
      const task = running.get(deliver.tid);
      if (task) task.arrivals.fromHost(deliver.envelopes);
      else early.set(deliver.tid, [...(early.get(deliver.tid) ?? []), ...deliver.envelopes]);
    },
    reply: (reply) => running.get(reply.tid)?.messaging.reply(reply),
    freeze: (freeze) => {
      if (running.has(freeze.tid)) freezing.add(freeze.tid);
    },
    'lane-out': (lane) => laneGiven(lane),
    'lane-close': (lane) => running.get(lane.tid)?.messaging.closeLane(lane.to),
    'report-now': (report) => running.get(report.tid)?.arrivals.reportNow(),
    'lane-acked': (ack) => running.get(ack.tid)?.messaging.acked(ack.to, ack.seq),
    covered: (covered) => running.get(covered.tid)?.messaging.covered(covered.to, covered.seq),
    resend: (resend) => running.get(resend.tid)?.messaging.resend(resend.to, new Map(resend.acked.map(({ to, seq }) => [to, seq]))),
    'lane-in': (lane) => laneGiven(lane),
    // A relay lane's socket is opened only for a task that runs here; one the browser will not
    // open (a policy without the lane path) counts as a lane that closed at once.
    'relay-lane-out': (lane) => {
      const task = running.get(lane.tid);
      if (!task) return;
      const channel = openSocketLane(lane.url);
      if (channel) task.messaging.openLane(lane.to, channel);
      else post({ type: 'lane-closed', tid: lane.tid, to: lane.to });
    },
    'relay-lane-in': (lane) => {
      const channel = running.has(lane.tid) ? openSocketLane(lane.url) : null;
      if (channel) running.get(lane.tid)!.arrivals.openLane(lane.from, channel);
    },
  };

  scope.addEventListener('message', (event) => {
    const parsed = ToWorker.safeParse(event.data);
    if (!parsed.success) {
      post({ type: 'done', tid: tidOf(event.data), ok: false, error: { code: 'E_BAD_FRAME', message: describeIssues(parsed.error) } });
      return;
    }
    const message = parsed.data;
    (handlers[message.type] as (message: ToWorker) => void)(message);
  });
}

function openSocketLane(url: string): LaneChannel | null {
  try {
    return socketLane(url);
  } catch {
    return null;
  }
}

/** What a checkpoint reads: the task's counters and mailbox, and what the host asks of it (SAFE_POINT_FLAGS, or by message). */
interface SafePoint {
  messaging: TaskMessaging;
  mailbox: Mailbox;
  arrivals: Arrivals;
  /** The task's cell of the worker's safe-point cells. */
  flag: { cells: Int32Array; index: number } | null;
  freezeAsked(): boolean;
  /** Posts the frozen state as the worker's last message (the host runs one task at a time in a worker, `starts`). */
  postLast: Post;
}

/** Runs one task to its end, calls `end` before its outcome goes to `finish`, so nothing the task does afterwards is sent. */
async function runTask(
  start: StartTask,
  load: (url: string) => Promise<ProgramModule>,
  safePoint: SafePoint,
  end: () => void,
  post: Post,
  finish: (done: Done) => void,
): Promise<void> {
  const { task } = start;
  const fail = (code: ErrorCode, message: string): void => {
    end();
    finish({ type: 'done', tid: task.tid, ok: false, error: { code, message: truncateLine(message) } });
  };

  let program: ProgramModule;
  try {
    program = await load(task.programUrl);
  } catch (error) {
    fail('E_BAD_PROGRAM', `the program cannot be imported: ${messageOf(error)}`);
    return;
  }
  const entry = task.name === null ? program.default : program[task.name];
  if (typeof entry !== 'function') {
    const what = task.name === null ? 'default export' : `export named "${task.name}"`;
    fail('E_BAD_PROGRAM', `the program has no callable ${what}`);
    return;
  }

  let value: unknown;
  try {
    value = await (entry as TaskFunction)(createContext(start, safePoint, post), task.input);
  } catch (error) {
    if (error instanceof Error && error.stack) post({ type: 'log', tid: task.tid, line: formatLogLine([error]) });
    fail('E_TASK_FAILED', messageOf(error));
    return;
  }
  let result: unknown;
  try {
    result = toJsonValue(value, 'the result');
  } catch (error) {
    fail(error instanceof WebpvmError ? error.code : 'E_TASK_FAILED', messageOf(error));
    return;
  }
  end();
  finish({ type: 'done', tid: task.tid, ok: true, value: result });
}

function createContext(start: StartTask, { messaging, mailbox, arrivals, flag, freezeAsked, postLast }: SafePoint, post: Post): TaskContext {
  const { task, checkpointIntervalMs } = start;
  const { tid } = task;
  const rng = task.resume ? Rng.fromState(task.resume.rng) : Rng.fromSeed(task.seed);
  let lastCheckpointAt = -Infinity;
  let lastProgressAt = -Infinity;
  let frozen = false;

  /** The one place a state is copied: when it is persisted, or when a freeze was asked. */
  const take = (state: unknown, freeze: boolean): void => {
    arrivals.flush();
    messaging.flush();
    let encoded;
    try {
      encoded = encodeValue(state);
    } catch (error) {
      throw new WebpvmError('E_BAD_REQUEST', `the checkpoint state cannot be kept: ${messageOf(error)}`);
    }
    const size = JSON.stringify(encoded.json ?? null).length + encoded.buffers.reduce((n, b) => n + b.byteLength, 0);
    if (size > LIMITS.stateBytes) {
      throw new WebpvmError('E_TOO_LARGE', `the checkpoint state is ${size} bytes, over the limit of ${LIMITS.stateBytes}`);
    }
    (freeze ? postLast : post)(
      {
        type: 'checkpoint',
        tid,
        frozen: freeze,
        checkpoint: { state: encoded.json, rng: rng.state(), ...messaging.counters() },
        stateBuffers: encoded.buffers,
        received: mailbox.received,
        unread: mailbox.unread(),
        unreadLane: mailbox.unreadLane(),
        delivered: arrivals.delivered(),
        log: messaging.logged(),
      },
      // A periodic checkpoint is copied: the task changes its state right after. A frozen task
      // never runs again, so its state moves out in O(1), however large.
      freeze ? transferable(encoded.buffers) : undefined,
    );
  };

  /** The task stops here for good: its state leaves, and it waits until its worker is terminated. */
  const freezeAt = (state: unknown): Promise<void> => {
    take(state, true);
    frozen = true;
    messaging.close();
    return FROZEN;
  };

  return {
    tid,
    parent: task.parent,
    jobId: task.jobId,
    input: task.input,
    resume: task.resume ? decodeValue(task.resume.state, start.stateBuffers ?? []) : null,
    checkpoint: (state) => {
      if (frozen) return FROZEN;
      if (flag) {
        // The common case costs one shared-memory load: the host raises a bit when something is due.
        const raised = Atomics.load(flag.cells, flag.index);
        if (raised === 0) return RESOLVED;
        if (raised & SAFE_POINT_FLAGS.freeze) return freezeAt(state);
        Atomics.and(flag.cells, flag.index, ~SAFE_POINT_FLAGS.persist);
        take(state, false);
        return RESOLVED;
      }
      if (freezeAsked()) return freezeAt(state);
      const now = performance.now();
      if (now - lastCheckpointAt >= checkpointIntervalMs) {
        take(state, false);
        lastCheckpointAt = now;
      }
      return RESOLVED;
    },
    progress: (fraction) => {
      if (Number.isNaN(fraction)) return;
      const now = performance.now();
      if (now - lastProgressAt < PROGRESS_INTERVAL_MS) return;
      lastProgressAt = now;
      post({ type: 'progress', tid, fraction: Math.min(1, Math.max(0, fraction)) });
    },
    log: (...args) => post({ type: 'log', tid, line: formatLogLine(args) }),
    random: () => rng.random(),
    ...messaging.api,
  };
}

/** The distinct buffers under these views that can be moved (a SharedArrayBuffer cannot). */
function transferable(views: readonly Uint8Array[]): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const view of views) if (view.buffer instanceof ArrayBuffer) buffers.add(view.buffer);
  return [...buffers];
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The tid of a message that failed to parse, when it has one, so the host can tell which task it was. */
function tidOf(data: unknown): string {
  const tid = (data as { task?: { tid?: unknown } } | null)?.task?.tid;
  return typeof tid === 'string' ? tid.slice(0, 64) : '';
}
