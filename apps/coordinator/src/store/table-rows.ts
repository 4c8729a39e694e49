import type { Checkpoint, ErrorBody, JobState, MigrationEvent, TaskCounts, TaskState, TokenQuotas, TokenScope } from '@webpvm/vm-protocol';
import type { JobOptions, JobTally, StoredHost, StoredJob, StoredOutcome, StoredTask, StoredToken, StoredVolunteer, TaskSummary } from './store.ts';

/** The rows both stores read (the same columns in SQLite and PostgreSQL), and the records they become. */
export interface JobRow {
  id: string;
  owner: string;
  name: string;
  options: string;
  program_hash: string;
  state: string;
  total: number;
  created_at: number;
  finished_at: number | null;
  error: string | null;
  attempts: number;
  migrations: number;
  open: number;
  tally: string;
}

export interface TaskRow {
  tid: string;
  job_id: string;
  idx: number;
  parent: string | null;
  name: string | null;
  input: string;
  state: string;
  attempt: number;
  host_id: string | null;
  result: string | null;
  error: string | null;
  checkpoint: string | null;
  messages_in: number;
  messages_out: number;
  root: number | null;
  seq: number | null;
  failures: number;
  losses: number;
}

export interface EventRow {
  id: number;
  body: string;
}

export const json = (value: unknown): string => JSON.stringify(value ?? null);
export const parse = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

export function jobFromRow(r: JobRow): StoredJob {
  return {
    id: r.id,
    owner: r.owner,
    name: r.name,
    // Jobs stored before jobs had a seed drew with the default one.
    options: { seed: 1, ...(JSON.parse(r.options) as Omit<JobOptions, 'seed'>) },
    programHash: r.program_hash,
    state: r.state as JobState,
    total: r.total,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    error: parse<ErrorBody>(r.error),
    attempts: r.attempts,
    migrations: r.migrations,
    open: r.open === 1,
    tally: JSON.parse(r.tally) as JobTally,
  };
}

export function taskFromRow(r: TaskRow): StoredTask {
  return {
    tid: r.tid,
    jobId: r.job_id,
    index: r.idx,
    parent: r.parent,
    root: r.root,
    name: r.name,
    input: JSON.parse(r.input),
    state: r.state as TaskState,
    attempt: r.attempt,
    hostId: r.host_id,
    result: parse(r.result),
    error: parse<ErrorBody>(r.error),
    checkpoint: parse<Checkpoint>(r.checkpoint),
    image: null,
    kept: null,
    messagesIn: r.messages_in,
    messagesOut: r.messages_out,
    seq: r.seq,
    failures: r.failures,
    losses: r.losses,
  };
}

export interface TokenRow {
  id: string;
  name: string;
  hash: string;
  created_at: number;
  scope: TokenScope;
  owner: string | null;
  expires_at: number | null;
  revoked_at: number | null;
  quotas: string | null;
}

export const tokenFromRow = (r: TokenRow): StoredToken => ({
  id: r.id,
  name: r.name,
  hash: r.hash,
  scope: r.scope,
  owner: r.owner ?? r.id,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  quotas: r.quotas ? (JSON.parse(r.quotas) as TokenQuotas) : {},
});

export interface VolunteerRow {
  volunteer_id: string;
  allowance: number;
  returned: number;
  dropped: number;
  validated: number;
  invalid: number;
  streak: number;
  trusted: number;
  updated_at: number;
}

export const volunteerFromRow = (r: VolunteerRow): StoredVolunteer => ({
  volunteerId: r.volunteer_id,
  allowance: r.allowance,
  returned: r.returned,
  dropped: r.dropped,
  validated: r.validated,
  invalid: r.invalid,
  streak: r.streak,
  trusted: r.trusted === 1,
  updatedAt: r.updated_at,
});

export interface HostRow {
  host_id: string;
  secret_hash: string;
  user_agent: string;
  created_at: number;
  last_seen_at: number;
  done: number;
}

export const hostFromRow = (r: HostRow): StoredHost => ({
  hostId: r.host_id,
  secretHash: r.secret_hash,
  userAgent: r.user_agent,
  createdAt: r.created_at,
  lastSeenAt: r.last_seen_at,
  done: r.done,
});

/** The columns a page of tasks reads (`tasksPage`). */
export type SummaryRow = Pick<TaskRow, 'tid' | 'idx' | 'parent' | 'state' | 'attempt' | 'host_id' | 'messages_in' | 'messages_out'>;

export const summaryFromRow = (r: SummaryRow): TaskSummary => ({
  tid: r.tid,
  index: r.idx,
  parent: r.parent,
  state: r.state as TaskState,
  attempt: r.attempt,
  hostId: r.host_id,
  messagesIn: r.messages_in,
  messagesOut: r.messages_out,
});

export interface OutcomeRow {
  seq: number;
  root: number;
  state: string;
  result: string | null;
  error: string | null;
}

export const outcomeFromRow = (r: OutcomeRow): StoredOutcome => ({ seq: r.seq, root: r.root, ok: r.state === 'done', result: parse(r.result), error: parse<ErrorBody>(r.error) });

/** A job's tasks counted by state, from `SELECT state, COUNT(*) AS n … GROUP BY state`. */
export function countsFromRows(rows: readonly { state: string; n: number }[]): TaskCounts {
  const counts: TaskCounts = { total: 0, pending: 0, running: 0, done: 0, failed: 0 };
  for (const { state, n } of rows) {
    counts.total += n;
    if (state === 'pending' || state === 'running' || state === 'done' || state === 'failed') counts[state] += n;
  }
  return counts;
}

/** The id lives in its own column; the body is the rest of the event, whatever its type. */
export const eventFromRow = (r: EventRow): MigrationEvent => ({ id: r.id, ...(JSON.parse(r.body) as Omit<MigrationEvent, 'id'>) });
