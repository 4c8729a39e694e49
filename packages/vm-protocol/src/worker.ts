import { z } from 'zod';
import { Checkpoint, TaskAssignment, TaskOp, WireError } from './host.ts';
import { Tid } from './ids.ts';
import { LIMITS } from './limits.ts';

/**
 * Messages between a host (page or Node) and the worker that runs task code. Task code is
 * untrusted, so the host parses what comes out of a worker like any other wire input.
 */

export const StartTask = z.object({
  type: z.literal('start'),
  task: TaskAssignment,
  checkpointIntervalMs: z.number().int().nonnegative(),
});

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

export const Deliver = z.object({ type: z.literal('deliver'), tid: z.string(), messages: z.array(DeliveredMessage) });

/** The answer to a task's request (see TaskOp in host.ts). */
export const Reply = z.discriminatedUnion('ok', [
  z.object({ type: z.literal('reply'), tid: z.string(), requestId: z.number().int(), ok: z.literal(true), value: z.unknown() }),
  z.object({ type: z.literal('reply'), tid: z.string(), requestId: z.number().int(), ok: z.literal(false), error: WireError }),
]);

export const ToWorker = z.union([StartTask, Deliver, Reply]);
export type ToWorker = z.infer<typeof ToWorker>;

export const WorkerCheckpoint = z.object({ type: z.literal('checkpoint'), tid: z.string(), checkpoint: Checkpoint });
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

export const FromWorker = z.union([WorkerCheckpoint, WorkerProgress, WorkerLog, WorkerDone, WorkerSend, WorkerRequest]);
export type FromWorker = z.infer<typeof FromWorker>;
