import { z } from 'zod';
import { ERRORS, type ErrorCode } from './errors.ts';
import { JobId, Tid } from './ids.ts';
import { LIMITS } from './limits.ts';

/** Bumped on any change a peer of the previous version could not parse. */
export const PROTOCOL_VERSION = 1;

const Uint32 = z.number().int().min(0).max(0xffffffff);
const Attempt = z.number().int().min(1).max(1_000_000);
const Fraction = z.number().min(0).max(1);

/** Where a task is up to: the state handed to `ctx.checkpoint` and the random generator beside it. */
export const Checkpoint = z.object({
  state: z.unknown(),
  rng: z.tuple([Uint32, Uint32, Uint32, Uint32]),
});
export type Checkpoint = z.infer<typeof Checkpoint>;

export const WireError = z.object({
  code: z.string().max(64).refine((c): c is ErrorCode => Object.hasOwn(ERRORS, c), 'unknown error code'),
  message: z.string().max(LIMITS.logLineChars),
});

export const TaskRef = z.object({ tid: Tid, attempt: Attempt });
export type TaskRef = z.infer<typeof TaskRef>;

export const TaskOutcome = z.discriminatedUnion('ok', [
  z.object({ tid: Tid, attempt: Attempt, ok: z.literal(true), value: z.unknown() }),
  z.object({ tid: Tid, attempt: Attempt, ok: z.literal(false), error: WireError }),
]);
export type TaskOutcome = z.infer<typeof TaskOutcome>;

const batch = <T extends z.ZodType>(item: T) => z.array(item).min(1).max(LIMITS.itemsPerBatch);

// ---------------------------------------------------------------- host → coordinator

export const HelloMsg = z.object({
  type: z.literal('hello'),
  protocol: z.number().int(),
  /** Absent on a host's first visit; the coordinator then issues an identity. */
  identity: z.object({ hostId: z.string().max(LIMITS.idChars), secret: z.string().max(128) }).nullable(),
  slots: z.number().int().min(0).max(LIMITS.slotsPerHost),
  /** Tasks this host still runs from before a reconnect: they keep running if still assigned to it. */
  running: z.array(TaskRef).max(LIMITS.slotsPerHost * 4),
  userAgent: z.string().max(512),
});

export const HeartbeatMsg = z.object({ type: z.literal('heartbeat') });

/** How many tasks the host wants to hold at once (running + queued); 0 stops new assignments. */
export const CapacityMsg = z.object({
  type: z.literal('capacity'),
  slots: z.number().int().min(0).max(LIMITS.slotsPerHost),
});

export const ProgressMsg = z.object({
  type: z.literal('progress'),
  items: batch(z.object({ tid: Tid, attempt: Attempt, fraction: Fraction })),
});

export const CheckpointMsg = z.object({
  type: z.literal('checkpoint'),
  tid: Tid,
  attempt: Attempt,
  checkpoint: Checkpoint,
});

export const ResultsMsg = z.object({ type: z.literal('results'), items: batch(TaskOutcome) });

export const LogMsg = z.object({
  type: z.literal('log'),
  tid: Tid,
  attempt: Attempt,
  line: z.string().max(LIMITS.logLineChars),
});

export const HostMessage = z.discriminatedUnion('type', [
  HelloMsg,
  HeartbeatMsg,
  CapacityMsg,
  ProgressMsg,
  CheckpointMsg,
  ResultsMsg,
  LogMsg,
]);
export type HostMessage = z.infer<typeof HostMessage>;

// ---------------------------------------------------------------- coordinator → host

export const WelcomeMsg = z.object({
  type: z.literal('welcome'),
  protocol: z.number().int(),
  hostId: z.string(),
  secret: z.string(),
  heartbeatMs: z.number().int().positive(),
  /** The least time between two checkpoints a host persists and forwards for one task. */
  checkpointIntervalMs: z.number().int().nonnegative(),
});

export const TaskAssignment = z.object({
  tid: Tid,
  attempt: Attempt,
  jobId: JobId,
  /** Same-origin URL of the job's program module, content-addressed. */
  programUrl: z.string().max(512),
  input: z.unknown(),
  resume: Checkpoint.nullable(),
  seed: Uint32,
  timeoutMs: z.number().int().positive().nullable(),
});
export type TaskAssignment = z.infer<typeof TaskAssignment>;

export const AssignMsg = z.object({ type: z.literal('assign'), tasks: batch(TaskAssignment) });

export const CancelMsg = z.object({
  type: z.literal('cancel'),
  tasks: batch(TaskRef),
  reason: z.string().max(LIMITS.logLineChars),
});

/** The coordinator has stored these outcomes durably: the host may forget them. */
export const AckMsg = z.object({ type: z.literal('ack'), tasks: batch(TaskRef) });

export const ErrorMsg = z.object({
  type: z.literal('error'),
  code: WireError.shape.code,
  message: z.string(),
  /** The `type` of the message that caused it, when it could be read. */
  ref: z.string().max(64).nullable(),
});

export const CoordinatorMessage = z.discriminatedUnion('type', [WelcomeMsg, AssignMsg, CancelMsg, AckMsg, ErrorMsg]);
export type CoordinatorMessage = z.infer<typeof CoordinatorMessage>;

export type HostMessageOf<T extends HostMessage['type']> = Extract<HostMessage, { type: T }>;
export type CoordinatorMessageOf<T extends CoordinatorMessage['type']> = Extract<CoordinatorMessage, { type: T }>;
