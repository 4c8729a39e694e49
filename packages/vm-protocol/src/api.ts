import { z } from 'zod';
import { ERRORS, type ErrorCode } from './errors.ts';
import { MigrationReason } from './host.ts';
import { JobId } from './ids.ts';
import { LIMITS } from './limits.ts';

/**
 * `POST /api/jobs`: a bag of tasks (`inputs`) or one root task (`main`). An `open` bag takes more
 * inputs later (`POST /api/jobs/:id/inputs`), so it may start with none.
 */
export const SubmitJobRequest = z
  .object({
    name: z.string().max(LIMITS.nameChars).default('job'),
    program: z.string().min(1).max(LIMITS.programBytes),
    inputs: z.array(z.unknown()).max(LIMITS.inputsPerRequest).optional(),
    main: z.unknown().optional(),
    open: z.boolean().default(false),
    /** Each bag task runs on `replicas` distinct volunteers; its result is what `quorum` of them agree on. */
    replicas: z.number().int().min(1).max(16).default(1),
    quorum: z.number().int().min(1).max(16).default(1),
    /** Replicas' numbers agree within this, relative above 1 and absolute below; null: the same canonical JSON. */
    tolerance: z.number().min(0).max(1).nullable().default(null),
    /** Adaptive replication: a trusted volunteer's result stands alone, but for `spotCheck` of them checked by a quorum. */
    adaptive: z.boolean().default(false),
    /** Replicas go to distinct volunteers, and with `address` also to distinct network addresses. */
    distinct: z.enum(['volunteer', 'address']).default('volunteer'),
    spotCheck: z.number().min(0).max(1).default(0.1),
    maxAttempts: z.number().int().min(1).max(100).default(3),
    taskTimeoutMs: z.number().int().min(100).max(7 * 24 * 3600 * 1000).nullable().default(null),
    priority: z.number().int().min(1).max(100).default(1),
    /** Each task's `ctx.random` seed derives from this and the task's index: the same under `webpvm run-local --seed`. */
    seed: z.number().int().min(0).max(0xffffffff).default(1),
  })
  .strict()
  .refine((j) => (j.inputs === undefined) !== (j.main === undefined), {
    message: 'give exactly one of `inputs` (a bag of tasks) or `main` (one root task)',
    path: ['inputs'],
  })
  .refine((j) => !j.open || j.inputs !== undefined, { message: 'only a bag of `inputs` can be `open`', path: ['open'] })
  .refine((j) => j.open || j.inputs === undefined || j.inputs.length > 0, {
    message: 'a bag needs at least one input, unless it is `open` (inputs streamed in later)',
    path: ['inputs'],
  })
  .refine((j) => j.quorum <= j.replicas, { message: '`quorum` cannot exceed `replicas`', path: ['quorum'] })
  .refine((j) => !j.adaptive || j.replicas > 1, {
    message: '`adaptive` needs `replicas` > 1: what volunteers not trusted yet run',
    path: ['adaptive'],
  })
  .refine((j) => j.replicas === 1 || j.inputs !== undefined, {
    message: 'replicas apply to a bag of `inputs`: a `main` task and the tasks it spawns run once',
    path: ['replicas'],
  });
export type SubmitJobRequest = z.input<typeof SubmitJobRequest>;
export type JobSpec = z.output<typeof SubmitJobRequest>;

/** `POST /api/jobs/:id/inputs`: how many inputs this part added, and how many the job has now. */
export const AppendInputsResponse = z.object({ added: z.number(), total: z.number() });
export type AppendInputsResponse = z.infer<typeof AppendInputsResponse>;

/**
 * One line of `GET /api/jobs/:id/results?format=ndjson&after=<cursor>`: a root task's final
 * outcome, `cursor` its place in the order outcomes were stored (from 1), `index` its input's.
 */
export const ResultLine = z.discriminatedUnion('ok', [
  z.object({ cursor: z.number().int().positive(), index: z.number().int().nonnegative(), ok: z.literal(true), result: z.unknown() }),
  z.object({
    cursor: z.number().int().positive(),
    index: z.number().int().nonnegative(),
    ok: z.literal(false),
    error: z.object({ code: z.string(), message: z.string() }),
  }),
]);
export type ResultLine = z.infer<typeof ResultLine>;

export const JobState = z.enum(['queued', 'running', 'done', 'failed', 'cancelled']);
export type JobState = z.infer<typeof JobState>;

export const TaskState = z.enum(['pending', 'running', 'done', 'failed', 'cancelled']);
export type TaskState = z.infer<typeof TaskState>;

export const TaskCounts = z.object({
  total: z.number(),
  pending: z.number(),
  running: z.number(),
  done: z.number(),
  failed: z.number(),
});
export type TaskCounts = z.infer<typeof TaskCounts>;

export const JobStatus = z.object({
  id: JobId,
  name: z.string(),
  state: JobState,
  tasks: TaskCounts,
  /** Mean progress of the job's tasks, 0..1 (a done task counts 1). */
  progress: z.number(),
  migrations: z.number(),
  attempts: z.number(),
  priority: z.number(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
export type JobStatus = z.infer<typeof JobStatus>;

export const JobList = z.object({ jobs: z.array(JobStatus) });
export type JobList = z.infer<typeof JobList>;

export const JobResults = z.object({ results: z.array(z.unknown()) });
export type JobResults = z.infer<typeof JobResults>;

/** One task of a job, as `GET /api/jobs/:id/tasks` lists it. */
export const TaskInfo = z.object({
  tid: z.string(),
  parent: z.string().nullable(),
  state: TaskState,
  attempt: z.number(),
  hostId: z.string().nullable(),
  progress: z.number(),
  messagesIn: z.number(),
  messagesOut: z.number(),
  /**
   * Where the task would start again if its host were lost now (an unfinished task): from the
   * start, its last JSON checkpoint, an image the coordinator holds, or an image another host
   * keeps (`keptBy`, for a checkpoint too large for the coordinator).
   */
  restartFrom: z.enum(['start', 'checkpoint', 'image', 'kept']).nullable(),
  keptBy: z.string().nullable(),
});
export type TaskInfo = z.infer<typeof TaskInfo>;

/** A page of a job's tasks in index order; `next` is the `after` of the next page, null after the last. */
export const TaskList = z.object({ tasks: z.array(TaskInfo), next: z.number().int().nullable() });
export type TaskList = z.infer<typeof TaskList>;

export const SubmitJobResponse = z.object({ id: JobId, tasks: z.number() });
export type SubmitJobResponse = z.infer<typeof SubmitJobResponse>;

export const HostInfo = z.object({
  hostId: z.string(),
  /** The browser profile the host (a tab) is part of: tabs of one profile share it. */
  volunteerId: z.string().nullable(),
  /** Its volunteer's replicated results that agreed with a quorum, and that did not. */
  validated: z.number(),
  invalid: z.number(),
  /** Its volunteer is trusted (adaptive replication): its results stand alone, but for spot checks. */
  trusted: z.boolean(),
  connected: z.boolean(),
  /** Ordered to drain: given no task, its tasks moved away. */
  draining: z.boolean(),
  slots: z.number(),
  running: z.number(),
  done: z.number(),
  userAgent: z.string(),
  connectedAt: z.string().nullable(),
  lastSeenAt: z.string(),
});
export type HostInfo = z.infer<typeof HostInfo>;
export const HostList = z.object({ hosts: z.array(HostInfo) });
export type HostList = z.infer<typeof HostList>;

/**
 * What a token may do with its owner's jobs: `read` them; `submit` them, and cancel, append to and
 * migrate them, and make `read` tokens; `admin` anything, with every job, host and token.
 */
export const TokenScope = z.enum(['read', 'submit', 'admin']);
export type TokenScope = z.infer<typeof TokenScope>;

/**
 * Limits on what a token's owner may hold at once, set by an admin as it makes the token: unfinished
 * `jobs`, `tasks` in them (inputs and spawned), `bytes` in one request, and tasks `running` on hosts.
 */
export const TokenQuotas = z
  .object({
    jobs: z.number().int().min(1).max(1_000_000).optional(),
    tasks: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    bytes: z.number().int().min(1024).max(LIMITS.requestBytes).optional(),
    running: z.number().int().min(1).max(1_000_000).optional(),
  })
  .strict();
export type TokenQuotas = z.infer<typeof TokenQuotas>;

export const CreateTokenRequest = z
  .object({
    /** Only an admin sets them. */
    quotas: TokenQuotas.optional(),
    name: z.string().max(LIMITS.nameChars).default('token'),
    /** `submit` unless said; a `submit` token makes `read` tokens only, for its own jobs. */
    scope: TokenScope.optional(),
    /** The same as `scope: "admin"`, as older clients ask. */
    admin: z.boolean().default(false),
    /** The token stops working this many days after it is made; it never does unless said. */
    expiresInDays: z.number().positive().max(3650).optional(),
  })
  .strict();

/** A token as listed: never its secret, which only its creation answer shows. */
export const TokenInfo = z.object({
  id: z.string(),
  name: z.string(),
  scope: TokenScope,
  /** Whose jobs it sees: its own id for admin and submit tokens, its maker's owner for read ones. */
  owner: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  quotas: TokenQuotas,
});
export type TokenInfo = z.infer<typeof TokenInfo>;
export const TokenList = z.object({ tokens: z.array(TokenInfo) });
export type TokenList = z.infer<typeof TokenList>;

export const CreateTokenResponse = TokenInfo.extend({ admin: z.boolean(), token: z.string() });
export type CreateTokenResponse = z.infer<typeof CreateTokenResponse>;

/** `POST /api/admin/gc`: delete the rows of jobs finished more than this many days ago. */
export const GcRequest = z.object({ olderThanDays: z.number().min(0).max(100_000) }).strict();
export const GcResponse = z.object({ jobs: z.number(), rows: z.number() });
export type GcResponse = z.infer<typeof GcResponse>;

export const ApiError = z.object({
  error: z.object({
    code: z.string().refine((c): c is ErrorCode => Object.hasOwn(ERRORS, c)),
    message: z.string(),
  }),
});
export type ApiError = z.infer<typeof ApiError>;

/**
 * One task migration, MPVM's four stages timed: `obtrusivenessMs` from the event to the worker
 * terminated on the old host, `latencyMs` from the event to the task running again on the new
 * one (null until then, or when it never ran again). `frozen` says whether the task stopped at
 * a safe point (false: its worker was terminated and it replayed from its last checkpoint).
 */
export const MigrationEvent = z.object({
  id: z.number().int().nonnegative(),
  type: z.literal('migration'),
  jobId: JobId,
  tid: z.string(),
  reason: MigrationReason,
  from: z.string(),
  to: z.string().nullable(),
  /** ISO time of the event. */
  at: z.string(),
  obtrusivenessMs: z.number().nonnegative(),
  latencyMs: z.number().nonnegative().nullable(),
  /** The image's size: state, unread messages, seqs. */
  bytes: z.number().int().nonnegative(),
  /** How the image went from the old host to the new one. */
  path: z.enum(['coordinator', 'channel']),
  frozen: z.boolean(),
});
export type MigrationEvent = z.infer<typeof MigrationEvent>;

export const MigrationList = z.object({ migrations: z.array(MigrationEvent) });
export type MigrationList = z.infer<typeof MigrationList>;
