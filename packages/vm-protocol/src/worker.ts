import { z } from 'zod';
import { Checkpoint, WireError, TaskAssignment } from './host.ts';
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

export const ToWorker = z.discriminatedUnion('type', [StartTask]);
export type ToWorker = z.infer<typeof ToWorker>;

export const WorkerCheckpoint = z.object({ type: z.literal('checkpoint'), tid: z.string(), checkpoint: Checkpoint });
export const WorkerProgress = z.object({ type: z.literal('progress'), tid: z.string(), fraction: z.number().min(0).max(1) });
export const WorkerLog = z.object({ type: z.literal('log'), tid: z.string(), line: z.string().max(LIMITS.logLineChars) });
export const WorkerDone = z.discriminatedUnion('ok', [
  z.object({ type: z.literal('done'), tid: z.string(), ok: z.literal(true), value: z.unknown() }),
  z.object({ type: z.literal('done'), tid: z.string(), ok: z.literal(false), error: WireError }),
]);

export const FromWorker = z.union([WorkerCheckpoint, WorkerProgress, WorkerLog, WorkerDone]);
export type FromWorker = z.infer<typeof FromWorker>;
