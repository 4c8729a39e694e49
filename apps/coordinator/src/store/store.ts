import type { Checkpoint, ErrorBody, JobState, MigrationEvent, TaskCounts, TaskState, TokenQuotas, TokenScope } from '@webpvm/vm-protocol';
import type { VmState } from '@webpvm/task-sdk/vm';

/** What a job was asked to do, beside its program and inputs. */
export interface JobOptions {
  kind: 'bag' | 'main';
  /** Root tasks (one per bag input, or the one main task): the job's results are theirs. */
  roots: number;
  replicas: number;
  quorum: number;
  /** How replicas' numbers may differ (api.ts); absent in jobs stored before it existed. */
  tolerance?: number | null;
  /** Adaptive replication and its spot-check rate (api.ts); absent in older jobs. */
  adaptive?: boolean;
  spotCheck?: number;
  /** Replicas on distinct volunteers, or on distinct network addresses as well (api.ts); absent in older jobs. */
  distinct?: 'volunteer' | 'address';
  maxAttempts: number;
  taskTimeoutMs: number | null;
  priority: number;
  /** Each task's `ctx.random` seed derives from this and the task's index (task-sdk determinism.ts). */
  seed: number;
  /** Its owner's token's quota of tasks running at once over all its jobs, as it was at submission. */
  ownerRunning?: number | null;
}

/**
 * What of a job has ended, kept with the job so that its status and a restart need not count
 * its tasks (a job may have millions).
 */
export interface JobTally {
  /** Tasks, roots and spawned, by how they ended. */
  done: number;
  failed: number;
  cancelled: number;
  rootsEnded: number;
  rootsFailed: number;
  /** Why the first root task to fail failed: the job's error names it. */
  firstFailure: string | null;
  /** The completion cursor given to the latest root outcome (`GET /api/jobs/:id/results?after=`). */
  resultSeq: number;
}

export const emptyTally = (): JobTally => ({ done: 0, failed: 0, cancelled: 0, rootsEnded: 0, rootsFailed: 0, firstFailure: null, resultSeq: 0 });

export interface StoredJob {
  id: string;
  owner: string;
  name: string;
  options: JobOptions;
  programHash: string;
  state: JobState;
  /** Its tasks so far: roots (inputs appended to an open bag included) and spawned ones. */
  total: number;
  /** An open bag takes more inputs (`POST /api/jobs/:id/inputs`) and is not done before it is closed. */
  open: boolean;
  tally: JobTally;
  createdAt: number;
  finishedAt: number | null;
  error: ErrorBody | null;
  attempts: number;
  migrations: number;
}

export interface StoredTask {
  tid: string;
  jobId: string;
  index: number;
  /** The task that spawned this one; null for a root task. */
  parent: string | null;
  /** A root task's input's place among the job's inputs; null for a spawned task. */
  root: number | null;
  /** The program export it runs; null for the default export. */
  name: string | null;
  input: unknown;
  state: TaskState;
  attempt: number;
  hostId: string | null;
  result: unknown;
  error: ErrorBody | null;
  checkpoint: Checkpoint | null;
  /** The image a restart starts it from (vm-protocol task-image.ts), newer than `checkpoint`; null when none is kept. */
  image: Uint8Array | null;
  /** Or, for an image too large to keep here, the host that keeps it (scheduler/kept-images.ts); else null. */
  kept: KeptImage | null;
  messagesIn: number;
  messagesOut: number;
  /** A root task's completion cursor, given when it ended done or failed; else null. */
  seq: number | null;
  /** Attempts that failed of its own doing (maxAttempts counts them), and attempts lost with their host. */
  failures: number;
  losses: number;
}

export type TaskUpdate = Pick<
  StoredTask,
  'tid' | 'state' | 'attempt' | 'hostId' | 'result' | 'error' | 'messagesIn' | 'messagesOut' | 'seq' | 'failures' | 'losses'
>;

/** What of a task changes as it runs: what a commit writes again, and what a restart reads back. */
export function taskUpdate(t: TaskUpdate): TaskUpdate {
  return {
    tid: t.tid,
    state: t.state,
    attempt: t.attempt,
    hostId: t.hostId,
    result: t.result,
    error: t.error,
    messagesIn: t.messagesIn,
    messagesOut: t.messagesOut,
    seq: t.seq,
    failures: t.failures,
    losses: t.losses,
  };
}

export interface StoredToken {
  id: string;
  name: string;
  hash: string;
  scope: TokenScope;
  /** Whose jobs it sees (auth.ts Principal). */
  owner: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  quotas: TokenQuotas;
}

export interface StoredHost {
  hostId: string;
  secretHash: string;
  userAgent: string;
  createdAt: number;
  lastSeenAt: number;
  done: number;
}

/** What the coordinator knows of a volunteer (scheduler/volunteers.ts): its leases, its record, its trust. */
export interface StoredVolunteer {
  readonly volunteerId: string;
  /** Leases it may hold at once. */
  allowance: number;
  /** Results it returned, and times it let leases expire or dropped them (disconnected holding tasks). */
  returned: number;
  dropped: number;
  /** Replicated results it returned that agreed with a quorum (`validated`) and that did not (`invalid`). */
  validated: number;
  invalid: number;
  /** Results in a row that agreed; trusted from TRUST_AFTER of them until one does not. */
  streak: number;
  trusted: boolean;
  updatedAt: number;
}

/** A task's row as it is first written (what changes later comes in task updates). */
export type NewTask = Pick<StoredTask, 'tid' | 'jobId' | 'index' | 'parent' | 'root' | 'name' | 'input' | 'state' | 'attempt' | 'hostId'>;

/** A checkpoint image kept by host `hostId` as its image `image`, `bytes` long, of this SHA-256 (hex). */
export interface KeptImage {
  hostId: string;
  image: number;
  bytes: number;
  sha256: string;
}

/** Everything the scheduler changed since the last commit; applied in one transaction. */
export interface WriteBatch {
  jobs: StoredJob[];
  newTasks: NewTask[];
  taskUpdates: TaskUpdate[];
  checkpoints: { tid: string; checkpoint: Checkpoint }[];
  /** Tasks' restart images, held here, kept by a host, or (both null) forgotten. */
  images: { tid: string; jobId: string; image: Uint8Array | null; kept: KeptImage | null }[];
  /** Jobs' PVM services (JobVm `state`), kept or (null) forgotten. */
  vmStates: { jobId: string; state: VmState | null }[];
  hosts: StoredHost[];
  volunteers: StoredVolunteer[];
}

/**
 * Which stored events to read: those of one job or of every job (of one owner, or of all), after
 * `afterId` in id order; `afterId` null asks for the latest `limit` instead. Either way oldest first.
 */
export interface EventQuery {
  jobId: string | null;
  owner: string | null;
  afterId: number | null;
  limit: number;
}

/**
 * An unfinished job as a restart resumes it: the tasks it holds in memory, and what it needs to
 * know of the others — not the millions of rows a big job may have.
 */
export interface UnfinishedJob {
  job: StoredJob;
  /** Its running tasks and its spawned tasks not ended, in index order. */
  tasks: StoredTask[];
  /** The indexes of its root tasks still pending: paged in later (`pendingRoots`). */
  pendingRoots: Uint32Array;
  /** The indexes of its tasks that ended failed or cancelled; every other task not named here has ended done. */
  endedBadly: Uint32Array;
  /** How many of its tasks were spawned (ended or not). */
  spawned: number;
  /** Its PVM services' answers, barriers, watchers and groups as last stored; null when it never had any. */
  vmState: VmState | null;
}

/** A root task's final outcome, as the results cursor reads it. */
export interface StoredOutcome {
  seq: number;
  /** Its input's place among the job's inputs. */
  root: number;
  ok: boolean;
  result: unknown;
  error: ErrorBody | null;
}

/** One task as `GET /api/jobs/:id/tasks` lists it, from its row. */
export type TaskSummary = Pick<StoredTask, 'tid' | 'index' | 'parent' | 'state' | 'attempt' | 'hostId' | 'messagesIn' | 'messagesOut'>;

export function emptyBatch(): WriteBatch {
  return { jobs: [], newTasks: [], taskUpdates: [], checkpoints: [], images: [], vmStates: [], hosts: [], volunteers: [] };
}

/**
 * Whether the store takes writes now, as `/healthz` reports it: failing since the earliest of the
 * failures not yet cleared, and why.
 */
export type StoreHealth = { ok: true } | { ok: false; since: number; reason: string };

/**
 * The coordinator's durable state. Two adapters share this interface: SQLite (embedded
 * default) and PostgreSQL; hence every method is async even where SQLite is not. Nothing here
 * reads all of a job's tasks at once: a job may have millions, read page by page.
 */
export interface Store {
  /** Which adapter this is, as `/healthz` reports it. */
  readonly engine: 'sqlite' | 'postgres';
  commit(batch: WriteBatch): Promise<void>;
  /** Jobs not yet finished (of those named, when named), as a restarted coordinator resumes them. */
  loadUnfinished(jobIds?: readonly string[]): Promise<UnfinishedJob[]>;
  /** Root tasks still pending with `from ≤ index < until`, in index order, at most `limit`. */
  pendingRoots(jobId: string, from: number, until: number, limit: number): Promise<StoredTask[]>;
  /**
   * Marks up to `limit` pending root tasks of a cancelled job cancelled (a big job's rows are
   * changed in parts, not in one long transaction); answers how many it marked.
   */
  cancelPendingRoots(jobId: string, limit: number): Promise<number>;
  /** Cancelled jobs with root tasks still marked pending: a restart finishes marking them. */
  cancelledWithPending(): Promise<string[]>;
  getJob(id: string): Promise<StoredJob | null>;
  listJobs(query: { owner: string | null; limit: number }): Promise<StoredJob[]>;
  /** A job's tasks counted from their rows (the job's tally says the same, without counting). */
  taskCounts(jobId: string): Promise<TaskCounts>;
  /** The results of root tasks with index > `afterIndex`, in input order (null where a task is not done), at most `limit`. */
  resultsInOrder(jobId: string, afterIndex: number, limit: number): Promise<{ index: number; result: unknown }[]>;
  /** Root outcomes with a completion cursor > `afterSeq`, in cursor order, at most `limit`. */
  outcomesAfter(jobId: string, afterSeq: number, limit: number): Promise<StoredOutcome[]>;
  /** Tasks with index > `afterIndex`, in index order, at most `limit`. */
  tasksPage(jobId: string, afterIndex: number, limit: number): Promise<TaskSummary[]>;
  /**
   * Deletes up to `rows` rows of jobs that finished before `before` (ms): their tasks first, then
   * their events, then the job row once its tasks are gone, and its program if no job refers to it. Called
   * again until it returns 0 (retention.ts), so that no transaction holds the file for long.
   */
  forgetFinished(before: number, rows: number): Promise<{ jobs: number; rows: number }>;
  /** Every volunteer's record, as a restart resumes them. */
  loadVolunteers(): Promise<StoredVolunteer[]>;
  /** Deletes up to `rows` volunteers not heard of since `before` (retention); returns how many. */
  forgetVolunteers(before: number, rows: number): Promise<number>;
  putProgram(hash: string, source: string): Promise<void>;
  getProgram(hash: string): Promise<string | null>;
  insertToken(token: StoredToken): Promise<void>;
  findToken(hash: string): Promise<StoredToken | null>;
  /** Tokens of one owner (null: every token), newest first. */
  listTokens(owner: string | null, limit: number): Promise<StoredToken[]>;
  getToken(id: string): Promise<StoredToken | null>;
  /** Marks a token revoked at `at`; false when there is no such token or it was revoked already. */
  revokeToken(id: string, at: number): Promise<boolean>;
  countTokens(): Promise<number>;
  getHost(hostId: string): Promise<StoredHost | null>;
  /** Events keep the ids they were given (event-log.ts); appended in one transaction. */
  appendEvents(events: MigrationEvent[]): Promise<void>;
  listEvents(query: EventQuery): Promise<MigrationEvent[]>;
  /** The largest event id stored, 0 when there is none: where a restarted event log goes on from. */
  lastEventId(): Promise<number>;
  /**
   * Failing from a write or read that failed for the store's sake (a full disk, an I/O error, a
   * read-only or removed file: the method threw `E_STORE_UNAVAILABLE`) until writes succeed again.
   */
  health(): StoreHealth;
  /** `health()`, after a small write to see whether a failure has cleared when nothing else would find out. */
  probe(): Promise<StoreHealth>;
  close(): Promise<void>;
}
