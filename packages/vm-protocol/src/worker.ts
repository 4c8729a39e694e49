import { z } from 'zod';
import { Checkpoint, TaskAssignment, TaskOp, WireError } from './host.ts';
import { Tid } from './ids.ts';
import { LIMITS } from './limits.ts';

/**
 * Messages between a host (page or Node) and the worker that runs task code. Task code is
 * untrusted, so the host parses what comes out of a worker like any other wire input.
 */

/**
 * A message for the task, already in order and deduplicated by the host. `data` is whatever
 * structured clone carried; the runtime checks only the envelope fields.
 */
const DeliveredMessage = z.object({
  from: z.string(),
  to: z.string(),
  tag: z.number().int(),
  seq: z.number().int().nonnegative(),
  data: z.unknown(),
});

const Bytes = z.array(z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'bytes')).max(1_000_000);

/**
 * Bits the host raises in index 0 of an Int32Array over a SharedArrayBuffer, read by
 * `ctx.checkpoint` with one Atomics.load: no message, no clock, no yield. Absent where the page
 * is not cross-origin isolated (and in Node): `checkpoint` then looks at a freeze message and
 * at the clock instead.
 */
export const SAFE_POINT_FLAGS = {
  /** Stop at this safe point and hand the state over. */
  freeze: 1,
  /** The checkpoint interval has passed: keep a copy of the state. */
  persist: 2,
} as const;

const FreezeFlag = z.custom<SharedArrayBuffer>(
  (v) => typeof SharedArrayBuffer !== 'undefined' && v instanceof SharedArrayBuffer && v.byteLength >= 4,
  'a SharedArrayBuffer of at least 4 bytes',
);

export const StartTask = z.object({
  type: z.literal('start'),
  task: TaskAssignment,
  checkpointIntervalMs: z.number().int().nonnegative(),
  /** The byte segments of `task.resume.state`, when the task resumes from an image. */
  stateBuffers: Bytes.optional(),
  /** What the task finds in its mailbox on resume, in delivery order. */
  mailbox: z.array(DeliveredMessage).optional(),
  freezeFlag: FreezeFlag.optional(),
});

/** Stop at the next safe point and answer with a frozen checkpoint. */
export const FreezeTask = z.object({ type: z.literal('freeze'), tid: z.string() });

export const Deliver = z.object({ type: z.literal('deliver'), tid: z.string(), messages: z.array(DeliveredMessage) });

/** The answer to a task's request (see TaskOp in host.ts). */
export const Reply = z.discriminatedUnion('ok', [
  z.object({ type: z.literal('reply'), tid: z.string(), requestId: z.number().int(), ok: z.literal(true), value: z.unknown() }),
  z.object({ type: z.literal('reply'), tid: z.string(), requestId: z.number().int(), ok: z.literal(false), error: WireError }),
]);

export const ToWorker = z.discriminatedUnion('type', [StartTask, Deliver, Reply, FreezeTask]);
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
});
export const WorkerProgress = z.object({ type: z.literal('progress'), tid: z.string(), fraction: z.number().min(0).max(1) });
export const WorkerLog = z.object({ type: z.literal('log'), tid: z.string(), line: z.string().max(LIMITS.logLineChars) });
export const WorkerDone = z.discriminatedUnion('ok', [
  z.object({ type: z.literal('done'), tid: z.string(), ok: z.literal(true), value: z.unknown() }),
  z.object({ type: z.literal('done'), tid: z.string(), ok: z.literal(false), error: WireError }),
]);

/** A message the task sends; the host routes it (same host, data channel or relay). */
export const WorkerSend = z.object({
  type: z.literal('send'),
  tid: z.string(),
  message: z.object({ from: Tid, to: Tid, tag: z.number().int().min(0).max(0x7fffffff), seq: z.number().int().min(1), data: z.unknown() }),
});

export const WorkerRequest = z.object({ type: z.literal('request'), tid: z.string(), requestId: z.number().int().min(1), op: TaskOp });

export const FromWorker = z.discriminatedUnion('type', [WorkerCheckpoint, WorkerProgress, WorkerLog, WorkerDone, WorkerSend, WorkerRequest]);
export type FromWorker = z.infer<typeof FromWorker>;
