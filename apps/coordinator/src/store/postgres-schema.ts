import type pg from 'pg';

/*
 * The PostgreSQL database's tables, as numbered migrations. Columns keep SQLite's names and
 * kinds (JSON as text, flags as 0/1), so that both adapters read rows into records the same way
 * (table-rows.ts); times and counters that outgrow 32 bits are BIGINT.
 */

/** Event ids a coordinator takes at once from the database's sequence (job-ownership.ts). */
export const EVENT_ID_BLOCK = 100_000;

/** Applied in order, each once, each in its own transaction; never edited once released: add one. */
export const MIGRATIONS: readonly string[] = [
  `
CREATE TABLE jobs (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, options TEXT NOT NULL,
  program_hash TEXT NOT NULL, state TEXT NOT NULL, total BIGINT NOT NULL,
  created_at BIGINT NOT NULL, finished_at BIGINT, error TEXT,
  attempts BIGINT NOT NULL, migrations BIGINT NOT NULL,
  open INTEGER NOT NULL DEFAULT 0, tally TEXT NOT NULL
);
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_created ON jobs(created_at DESC, id DESC);
CREATE INDEX jobs_owner ON jobs(owner, created_at DESC, id DESC);
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE tasks (
  tid TEXT PRIMARY KEY, job_id TEXT NOT NULL, idx INTEGER NOT NULL, parent TEXT, name TEXT, input TEXT NOT NULL,
  state TEXT NOT NULL, attempt INTEGER NOT NULL, host_id TEXT, result TEXT, error TEXT, checkpoint TEXT,
  messages_in BIGINT NOT NULL DEFAULT 0, messages_out BIGINT NOT NULL DEFAULT 0,
  root INTEGER, seq BIGINT, failures INTEGER NOT NULL DEFAULT 0, losses INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_job ON tasks(job_id, idx);
CREATE INDEX tasks_pending_roots ON tasks(job_id, idx) WHERE state = 'pending' AND root IS NOT NULL;
CREATE INDEX tasks_restart ON tasks(job_id, idx) WHERE root IS NULL OR state IN ('running', 'failed');
CREATE INDEX tasks_outcomes ON tasks(job_id, seq) WHERE seq IS NOT NULL;
CREATE TABLE programs (hash TEXT PRIMARY KEY, source TEXT NOT NULL);
CREATE TABLE tokens (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL,
  scope TEXT NOT NULL, owner TEXT, expires_at BIGINT, revoked_at BIGINT, quotas TEXT
);
CREATE INDEX tokens_owner ON tokens(owner, created_at DESC, id);
CREATE TABLE hosts (
  host_id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, user_agent TEXT NOT NULL,
  created_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL, done BIGINT NOT NULL
);
CREATE TABLE volunteers (
  volunteer_id TEXT PRIMARY KEY, allowance INTEGER NOT NULL, returned BIGINT NOT NULL, dropped BIGINT NOT NULL,
  validated BIGINT NOT NULL, invalid BIGINT NOT NULL, streak BIGINT NOT NULL, trusted INTEGER NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX volunteers_updated ON volunteers(updated_at);
CREATE TABLE events (id BIGINT PRIMARY KEY, job_id TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX events_job ON events(job_id, id);
CREATE TABLE probe (pad BYTEA NOT NULL);
CREATE TABLE task_images (tid TEXT PRIMARY KEY, job_id TEXT NOT NULL, image BYTEA NOT NULL);
CREATE INDEX task_images_job ON task_images(job_id);
CREATE TABLE task_keepers (tid TEXT PRIMARY KEY, job_id TEXT NOT NULL, kept TEXT NOT NULL);
CREATE INDEX task_keepers_job ON task_keepers(job_id);
CREATE TABLE vm_states (job_id TEXT PRIMARY KEY, state TEXT NOT NULL);
`,
  // Several coordinators on one database (docs/cluster.md): who runs which job, and event ids no two coordinators share.
  `
CREATE TABLE job_owners (job_id TEXT PRIMARY KEY, coordinator TEXT NOT NULL, until BIGINT NOT NULL);
CREATE INDEX job_owners_coordinator ON job_owners(coordinator);
CREATE INDEX job_owners_until ON job_owners(until);
CREATE SEQUENCE event_id_blocks INCREMENT BY ${EVENT_ID_BLOCK} MINVALUE 1;
SELECT setval('event_id_blocks', (SELECT COALESCE(MAX(id), 0) + 1 FROM events), false);
`,
  // The cluster's coordinators, by public URL, as pages learn them to fail over to (docs/cluster.md).
  `
CREATE TABLE coordinators (coordinator TEXT PRIMARY KEY, seen BIGINT NOT NULL);
`,
];

/** Any fixed number: the lock that lets one coordinator of several starting at once migrate. */
const MIGRATION_LOCK = 0x77656270;

/**
 * Brings the database up to the latest migration. Coordinators of a cluster may start together:
 * an advisory lock makes the others wait, then find nothing left to do.
 */
export async function migrate(client: pg.PoolClient): Promise<void> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
    const { rows } = await client.query<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations');
    for (let version = (rows[0]?.version ?? 0) + 1; version <= MIGRATIONS.length; version++) {
      await client.query('BEGIN');
      try {
        await client.query(MIGRATIONS[version - 1]!);
        await client.query('INSERT INTO schema_migrations VALUES ($1, $2)', [version, Date.now()]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  }
}
