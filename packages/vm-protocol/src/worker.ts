import { z } from 'zod';
import { Tid } from './ids.ts';
import { MAX_ENVELOPE_BYTES } from './envelope.ts';
import { LaneChannelSchema } from './lane.ts';
import { LIMITS } from './limits.ts';
import { Checkpoint, TaskAssignment, TaskOp, WireError } from './task.ts';

/**
 * Messages between a host (page or Node) and the worker that runs task code. Task code is
 * untrusted, so the host parses what comes out of a worker like any other wire input.
 */

/**
 * A message's envelope (envelope.ts), as hosts hand it to the receiving task's worker and take
 * it from the sending one's: only workers decode message data.
 */
const MessageEnvelope = z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.byteLength <= MAX_ENVELOPE_BYTES, 'a message envelope');

const Bytes = z.array(z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'bytes')).max(1_000_000);

/**
 * Bits the host raises in a task's cell of an Int32Array over a SharedArrayBuffer (the worker's
 * flags, one cell per task it may hold, handed to it as it starts: sandbox.ts SandboxBoot),
 * read by `ctx.checkpoint` with one Atomics.load: no message, no clock, no yield. Absent where
 * the page is not cross-origin isolated (and in Node): `checkpoint` then looks at a freeze
 * message and at the clock instead.
 */
export const SAFE_POINT_FLAGS = {
  /** Stop at this safe point and hand the state over. */
  freeze: 1,
  /** The checkpoint interval has passed: keep a copy of the state. */
  persist: 2,
} as const;

/** The most tasks a host hands one worker at once (`starts` and those still waiting in it). */
export const MAX_HANDED = 64;

export const StartTask = z.object({
  type: z.literal('start'),
  task: TaskAssignment,
  checkpointIntervalMs: z.number().int().nonnegative(),
  /** The byte segments of `task.resume.state`, when the task resumes from an image. */
  stateBuffers: Bytes.optional(),
  /** The envelopes of what the task finds in its mailbox on resume, in delivery order. */
  mailbox: z.array(MessageEnvelope).optional(),
  /** Per sender, the highest seq the task had been handed before (on resume): lanes go on from there. */
  delivered: z.array(z.tuple([Tid, z.number().int().nonnegative()])).max(1_000_000).optional(),
  /** The task's cell in the worker's flags, when it has them. */
  flag: z.number().int().min(0).max(MAX_HANDED - 1).optional(),
  /**
   * The task's sender log as its checkpoint kept it (`WorkerCheckpoint.log`), on resume: kept
   * again until the receivers' checkpoints cover it, and sent again at once when the task is
   * `recovering` (task.ts).
   */
  log: z.array(MessageEnvelope).max(1_000_000).optional(),
  /** False: keep no sender log (measuring its cost, bench/); the task then cannot be recovered exactly after a crash. */
  senderLog: z.boolean().optional(),
});

/**
 * Tasks to run one after another, each once the one before has ended, their outcomes reported
 * together (`dones`): small tasks travel in bulk, and the worker never waits for its host
 * between two of them. Unlike `start`, which runs a task at once beside the others.
 */
export const StartTasks = z.object({ type: z.literal('starts'), tasks: z.array(StartTask).min(1).max(MAX_HANDED) });

/** Of these tasks handed by `starts`, drop those not started yet; answered by `withdrawn`. */
export const Withdraw = z.object({ type: z.literal('withdraw'), tids: z.array(z.string()).min(1).max(MAX_HANDED) });

/** Stop at the next safe point and answer with a frozen checkpoint. */
export const FreezeTask = z.object({ type: z.literal('freeze'), tid: z.string() });

/**
 * Messages for the task, already in order and deduplicated by the host (exit notifications
 * after what their sender sent), as their envelopes.
 */
export const Deliver = z.object({ type: z.literal('deliver'), tid: z.string(), envelopes: z.array(MessageEnvelope) });

/** The answer to a task's request (see TaskOp in task.ts). */
export const Reply = z.discriminatedUnion('ok', [
  z.object({ type: z.literal('reply'), tid: z.string(), requestId: z.number().int(), ok: z.literal(true), value: z.unknown() }),
  z.object({ type: z.literal('reply'), tid: z.string(), requestId: z.number().int(), ok: z.literal(false), error: WireError }),
]);

const LaneUrl = z.string().max(2048).regex(/^wss?:\/\//, 'a ws: or wss: URL');

/** The sending end of a lane (lane.ts) from task `tid` to task `to`: what `tid` sends `to` may go on it. */
export const LaneOut = z.object({ type: z.literal('lane-out'), tid: z.string(), to: Tid, channel: LaneChannelSchema });

/** The receiving end of a lane from task `from` to task `tid`: the worker reads it itself and reports what it delivers. */
export const LaneIn = z.object({ type: z.literal('lane-in'), tid: z.string(), from: Tid, channel: LaneChannelSchema });

/**
 * The sending end of a relay lane (lane.ts) from `tid` to `to`: the worker opens the WebSocket at
 * `url` itself and writes on it as on a lane.
 */
export const RelayLaneOut = z.object({ type: z.literal('relay-lane-out'), tid: z.string(), to: Tid, url: LaneUrl });

/** The receiving end of a relay lane from `from` to `tid`: the worker opens it and reads it as a lane. */
export const RelayLaneIn = z.object({ type: z.literal('relay-lane-in'), tid: z.string(), from: Tid, url: LaneUrl });

/** The receiving end of the lane from `tid` to `to` is gone: stop writing on it. */
export const LaneClose = z.object({ type: z.literal('lane-close'), tid: z.string(), to: Tid });

/**
 * The host holds a message for `tid` behind a gap that a lane may have filled: report what was
 * delivered now, and each lane delivery at once for a while, instead of in the next batch.
 */
export const ReportNow = z.object({ type: z.literal('report-now'), tid: z.string() });

/**
 * The host of `to` acknowledged the messages of `tid` to it up to `seq`: the worker no longer
 * keeps the ones it wrote on a lane (see `lane-sent`).
 */
export const LaneAcked = z.object({ type: z.literal('lane-acked'), tid: z.string(), to: Tid, seq: z.number().int().min(1) });

/**
 * The checkpoint of `to` kept off its tab covers what `tid` sent it up to `seq`: the worker's
 * sender log forgets those messages (sender-based message logging, docs/architecture.md).
 */
export const Covered = z.object({ type: z.literal('covered'), tid: z.string(), to: Tid, seq: z.number().int().min(1) });

/**
 * What `tid`'s sender log holds for `to` (without `to`, for every receiver) goes again, but what
 * `acked` says each receiver's host acknowledged: `to` restarted from its checkpoint after a crash
 * (nothing acknowledged counts then), or what was not acknowledged may have been lost with a
 * broken connection.
 */
export const Resend = z.object({
  type: z.literal('resend'),
  tid: z.string(),
  to: Tid.optional(),
  acked: z.array(z.object({ to: Tid, seq: z.number().int().min(0) })).max(LIMITS.tasksPerJob),
});

export const ToWorker = z.discriminatedUnion('type', [
  StartTask,
  StartTasks,
  Withdraw,
  Deliver,
  Reply,
  FreezeTask,
  LaneOut,
  LaneIn,
  RelayLaneOut,
  RelayLaneIn,
  LaneClose,
  ReportNow,
  LaneAcked,
  Covered,
  Resend,
]);
export type ToWorker = z.infer<typeof ToWorker>;

/**
 * A checkpoint taken at a safe point: periodically (`frozen` false), or because a freeze was asked
 * (`frozen` true: the task waits there until its worker is terminated). `received` counts the
 * messages delivered to the task so far and `unread` lists which of them (1-based, in delivery
 * order) it has not read yet: with that, the host knows which delivered messages to keep for a replay.
 */
export const WorkerCheckpoint = z.object({
  type: z.literal('checkpoint'),
  tid: z.string(),
  frozen: z.boolean(),
  checkpoint: Checkpoint.required({ sent: true, requests: true }),
  stateBuffers: Bytes,
  received: z.number().int().nonnegative(),
  unread: z.array(z.number().int().min(1)).max(10_000_000),
  /**
   * The envelopes of the unread messages that came on lanes (`delivered` reports name those by
   * sender and seq only): the host keeps what is unread at a checkpoint whole, for a restart from it.
   */
  unreadLane: z.array(z.object({ n: z.number().int().min(1), envelope: MessageEnvelope })).max(1_000_000),
  /** Per sender, the highest seq delivered to the task: a restart from this checkpoint takes only later ones. */
  delivered: z.array(z.tuple([Tid, z.number().int().min(1)])).max(LIMITS.tasksPerJob),
  /**
   * The sender log: what the task sent that its receivers' checkpoints do not cover yet, as
   * envelopes in the order sent. A restart from this checkpoint sends them again, for a receiver
   * that crashed too and restarts from a checkpoint older than them.
   */
  log: z.array(MessageEnvelope).max(1_000_000),
});
export const WorkerProgress = z.object({ type: z.literal('progress'), tid: z.string(), fraction: z.number().min(0).max(1) });
export const WorkerLog = z.object({ type: z.literal('log'), tid: z.string(), line: z.string().max(LIMITS.logLineChars) });
export const WorkerDone = z.discriminatedUnion('ok', [
  z.object({ type: z.literal('done'), tid: z.string(), ok: z.literal(true), value: z.unknown() }),
  z.object({ type: z.literal('done'), tid: z.string(), ok: z.literal(false), error: WireError }),
]);

/** Outcomes of tasks handed by `starts`, in the order they ended; never after a later message of the next task. */
export const WorkerDones = z.object({ type: z.literal('dones'), items: z.array(WorkerDone).min(1).max(MAX_HANDED) });

/** The tasks of a `withdraw` that had not started: they never will here. */
export const WorkerWithdrawn = z.object({ type: z.literal('withdrawn'), tids: z.array(z.string()).max(MAX_HANDED) });

/**
 * A message the task sends, as its envelope (transferred, not copied); the host routes it (same
 * host, data channel or relay) and checks that it is the task's own to a task of its job.
 */
export const WorkerSend = z.object({ type: z.literal('send'), tid: z.string(), envelope: MessageEnvelope });

export const WorkerRequest = z.object({ type: z.literal('request'), tid: z.string(), requestId: z.number().int().min(1), op: TaskOp });

/** The most entries in one `lane-sent`, `lane-wrote` or `delivered`. */
export const REPORT_BATCH = 4096;

/**
 * Per receiver, the last seq the task wrote on lanes and how many messages since the last
 * report: in batches, all of them before the task's next checkpoint and before any `lane-sent`.
 */
export const WorkerLaneWrote = z.object({
  type: z.literal('lane-wrote'),
  tid: z.string(),
  pairs: z
    .array(z.object({ to: Tid, seq: z.number().int().min(1), count: z.number().int().min(1) }))
    .min(1)
    .max(REPORT_BATCH),
});

/**
 * Copies of messages the task wrote on lanes and their receivers' hosts have not acknowledged
 * yet, as their envelopes, in the order written. The worker keeps them (`lane-acked` drops them)
 * and hands them to the host when they may have to go another way: before a checkpoint (a task
 * restarted from it does not send them again), when their lane closes, when the task ends. The
 * host then keeps them until acknowledged. What a worker terminated before it handed them over
 * took with it, its task, restarted from its checkpoint, sends again.
 */
export const WorkerLaneSent = z.object({ type: z.literal('lane-sent'), tid: z.string(), envelopes: z.array(MessageEnvelope).min(1).max(REPORT_BATCH) });

/**
 * What the worker handed the task, numbered as the task received it (n from 1, as `received`
 * counts), by (from, seq); `lane` for a message that came on a lane, whose bytes stay in the
 * worker: the host's replay log names it, and its sender's log holds it (task-image.ts
 * `MessageRef`). The host keeps its replay log in this order; a message the worker had already
 * (same from and seq) is dropped there and not reported. Reports come in batches, all of them
 * before the task's next checkpoint.
 */
export const WorkerDelivered = z.object({
  type: z.literal('delivered'),
  tid: z.string(),
  entries: z
    .array(
      z.object({
        n: z.number().int().min(1),
        from: Tid,
        seq: z.number().int().nonnegative(),
        lane: z.literal(true).optional(),
      }),
    )
    .max(REPORT_BATCH),
});

/** The task's lane to `to` closed: it sends `to` through its host again. */
export const WorkerLaneClosed = z.object({ type: z.literal('lane-closed'), tid: z.string(), to: Tid });

/**
 * Messages of the task's sender log sent again (after `resend`, or on a recovering start), as
 * their envelopes: the host sends them through the relay; their receivers drop what they have.
 */
export const WorkerResent = z.object({ type: z.literal('resent'), tid: z.string(), envelopes: z.array(MessageEnvelope).min(1).max(REPORT_BATCH) });

/**
 * What the task's sender log still holds as the task ends, as envelopes (before its `done`): the
 * host keeps them for receivers that may need them again — restarted from an earlier checkpoint,
 * or behind a connection that broke with them on their way.
 */
export const WorkerEndedLog = z.object({ type: z.literal('ended-log'), tid: z.string(), envelopes: z.array(MessageEnvelope).min(1).max(REPORT_BATCH) });

/**
 * The task's sender log holds more than its share for `to`: `to` is asked for a checkpoint, which
 * lets the log forget what it covers (sent once until the log shrinks again). `dropped`: the log
 * is over its limit and let go of messages to `to` its checkpoint does not cover.
 */
export const WorkerLogFull = z.object({ type: z.literal('log-full'), tid: z.string(), to: Tid, dropped: z.boolean() });

export const FromWorker = z.discriminatedUnion('type', [
  WorkerCheckpoint,
  WorkerProgress,
  WorkerLog,
  WorkerDone,
  WorkerDones,
  WorkerWithdrawn,
  WorkerSend,
  WorkerRequest,
  WorkerLaneWrote,
  WorkerLaneSent,
  WorkerLaneClosed,
  WorkerDelivered,
  WorkerResent,
  WorkerEndedLog,
  WorkerLogFull,
]);
export type FromWorker = z.infer<typeof FromWorker>;
