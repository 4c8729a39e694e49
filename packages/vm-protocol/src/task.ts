import { z } from 'zod';
import { ERRORS, type ErrorCode } from './errors.ts';
import { JobId, Tid } from './ids.ts';
import { LIMITS } from './limits.ts';

/**
 * What the host socket (host.ts) and the page↔worker protocol (worker.ts) both say of a task: its
 * assignment, its checkpoint, its requests and its errors. Kept apart from host.ts so that the task
 * worker, which runs untrusted code, bundles none of the host socket's schemas.
 */

const Uint32 = z.number().int().min(0).max(0xffffffff);
export const Attempt = z.number().int().min(1).max(1_000_000);

/**
 * Where a task is up to: the state handed to `ctx.checkpoint` (value-encoded, value-codec.ts,
 * with no byte segments: a state with typed arrays stays on its host and travels in images),
 * the random generator beside it, and the seqs and request count it resumes with.
 */
export const Checkpoint = z.object({
  state: z.unknown(),
  rng: z.tuple([Uint32, Uint32, Uint32, Uint32]),
  sent: z.array(z.object({ to: Tid, seq: z.number().int().nonnegative() })).max(LIMITS.tasksPerJob).optional(),
  requests: z.number().int().nonnegative().optional(),
});
export type Checkpoint = z.infer<typeof Checkpoint>;

export const WireError = z.object({
  code: z.string().max(64).refine((c): c is ErrorCode => Object.hasOwn(ERRORS, c), 'unknown error code'),
  message: z.string().max(LIMITS.logLineChars),
});

const GroupName = z.string().min(1).max(LIMITS.groupChars);

/** What a task asks of the virtual machine (PVM's spawn, groups, barrier, notify). */
export const TaskOp = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('spawn'),
    /** A named export of the program, or null for its default export. */
    name: z.string().min(1).max(LIMITS.nameChars).nullable(),
    inputs: z.array(z.unknown()).min(1).max(LIMITS.spawnPerCall),
  }),
  z.object({ kind: z.literal('join'), group: GroupName }),
  z.object({ kind: z.literal('leave'), group: GroupName }),
  z.object({ kind: z.literal('size'), group: GroupName }),
  z.object({ kind: z.literal('members'), group: GroupName }),
  z.object({ kind: z.literal('barrier'), group: GroupName, count: z.number().int().min(1).max(LIMITS.tasksPerJob) }),
  z.object({ kind: z.literal('notify'), tids: z.array(Tid).min(1).max(LIMITS.spawnPerCall), tag: z.number().int().min(0).max(0x7fffffff) }),
]);
export type TaskOp = z.infer<typeof TaskOp>;

export const TaskAssignment = z.object({
  tid: Tid,
  attempt: Attempt,
  jobId: JobId,
  /** The task that spawned this one; null for a root task. A spawned task starts at once, even past the host's slots. */
  parent: Tid.nullable(),
  /** The program's named export to run, or null for its default export. */
  name: z.string().max(LIMITS.nameChars).nullable(),
  /** Same-origin URL of the job's program module, content-addressed. */
  programUrl: z.string().max(512),
  input: z.unknown(),
  resume: Checkpoint.nullable(),
  /** The size of the task's image, sent just before in `part` frames, when it resumes from a migration. */
  imageBytes: z.number().int().positive().max(LIMITS.imageBytes).optional(),
  /**
   * The attempt follows the loss of the task's host (not a migration): its receivers may have
   * crashed with it, so it sends its sender log again as it starts.
   */
  recovering: z.literal(true).optional(),
  seed: Uint32,
  timeoutMs: z.number().int().positive().nullable(),
});
export type TaskAssignment = z.infer<typeof TaskAssignment>;
