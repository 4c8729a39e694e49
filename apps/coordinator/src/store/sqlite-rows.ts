import type Database from 'better-sqlite3';
import type { Checkpoint, ErrorBody, JobState, MigrationEvent, TaskState, TokenQuotas, TokenScope } from '@webpvm/vm-protocol';
import type { JobOptions, JobTally, StoredJob, StoredTask, StoredToken } from './store.ts';

/** The SQLite rows the store reads, and the records they become. */
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

/** Indexes read from a one-column query, kept compact: a big job's pending roots may be millions. */
export function indexes(statement: Database.Statement, ...params: unknown[]): Uint32Array {
  let out = new Uint32Array(1024);
  let n = 0;
  for (const index of statement.pluck().iterate(...params) as IterableIterator<number>) {
    if (n === out.length) {
      const grown = new Uint32Array(out.length * 2);
      grown.set(out);
      out = grown;
    }
    out[n++] = index;
  }
  return out.slice(0, n);
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

/** The id lives in its own column; the body is the rest of the event, whatever its type. */
export const eventFromRow = (r: EventRow): MigrationEvent => ({ id: r.id, ...(JSON.parse(r.body) as Omit<MigrationEvent, 'id'>) });
