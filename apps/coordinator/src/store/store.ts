import type { Checkpoint, ErrorBody, JobState, MigrationEvent, TaskCounts, TaskState } from '@webpvm/vm-protocol';

/** What a job was asked to do, beside its program and inputs. */
export interface JobOptions {
  kind: 'bag' | 'main';
  /** Root tasks (one per bag input, or the one main task): the job's results are theirs. */
  roots: number;
  replicas: number;
  quorum: number;
  maxAttempts: number;
  taskTimeoutMs: number | null;
  priority: number;
  /** Each task's `ctx.random` seed derives from this and the task's index (task-sdk determinism.ts). */
  seed: number;
}

export interface StoredJob {
  id: string;
  owner: string;
  name: string;
  options: JobOptions;
  programHash: string;
  state: JobState;
  total: number;
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
  /** The program export it runs; null for the default export. */
  name: string | null;
  input: unknown;
  state: TaskState;
  attempt: number;
  hostId: string | null;
  result: unknown;
  error: ErrorBody | null;
  checkpoint: Checkpoint | null;
  messagesIn: number;
  messagesOut: number;
}

export type TaskUpdate = Pick<
  StoredTask,
  'tid' | 'state' | 'attempt' | 'hostId' | 'result' | 'error' | 'messagesIn' | 'messagesOut'
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
  };
}

export interface StoredToken {
  id: string;
  name: string;
  hash: string;
  admin: boolean;
  createdAt: number;
}

export interface StoredHost {
  hostId: string;
  secretHash: string;
  userAgent: string;
  createdAt: number;
  lastSeenAt: number;
  done: number;
}

/** Everything the scheduler changed since the last commit; applied in one transaction. */
export interface WriteBatch {
  jobs: StoredJob[];
  newTasks: StoredTask[];
  taskUpdates: TaskUpdate[];
  checkpoints: { tid: string; checkpoint: Checkpoint }[];
  hosts: StoredHost[];
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

export function emptyBatch(): WriteBatch {
  return { jobs: [], newTasks: [], taskUpdates: [], checkpoints: [], hosts: [] };
}

/**
 * The coordinator's durable state. Two adapters share this interface: SQLite (embedded
 * default) and PostgreSQL; hence every method is async even where SQLite is not.
 */
export interface Store {
  commit(batch: WriteBatch): Promise<void>;
  /** Jobs not yet finished, with all their tasks: what a restarted coordinator resumes. */
  loadUnfinished(): Promise<{ jobs: StoredJob[]; tasks: StoredTask[] }>;
  getJob(id: string): Promise<StoredJob | null>;
  listJobs(query: { owner: string | null; limit: number }): Promise<StoredJob[]>;
  taskCounts(jobId: string): Promise<TaskCounts>;
  /** Results of the first `count` tasks (the roots) in input order; null where a task has none. */
  getResults(jobId: string, count: number): Promise<unknown[]>;
  /** Every task of a job in index order (without inputs, results and checkpoints). */
  getTasks(jobId: string): Promise<Omit<StoredTask, 'input' | 'result' | 'checkpoint'>[]>;
  putProgram(hash: string, source: string): Promise<void>;
  getProgram(hash: string): Promise<string | null>;
  insertToken(token: StoredToken): Promise<void>;
  findToken(hash: string): Promise<StoredToken | null>;
  countTokens(): Promise<number>;
  getHost(hostId: string): Promise<StoredHost | null>;
  /** Events keep the ids they were given (event-log.ts); appended in one transaction. */
  appendEvents(events: MigrationEvent[]): Promise<void>;
  listEvents(query: EventQuery): Promise<MigrationEvent[]>;
  /** The largest event id stored, 0 when there is none: where a restarted event log goes on from. */
  lastEventId(): Promise<number>;
  close(): Promise<void>;
}
