import type Database from 'better-sqlite3';

/* The SQLite file's tables and indexes, and how a file made by an older coordinator is brought up to date. */

export const TABLES = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, options TEXT NOT NULL,
  program_hash TEXT NOT NULL, state TEXT NOT NULL, total INTEGER NOT NULL,
  created_at INTEGER NOT NULL, finished_at INTEGER, error TEXT,
  attempts INTEGER NOT NULL, migrations INTEGER NOT NULL,
  open INTEGER NOT NULL DEFAULT 0, tally TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS tasks (
  tid TEXT PRIMARY KEY, job_id TEXT NOT NULL, idx INTEGER NOT NULL, parent TEXT, name TEXT, input TEXT NOT NULL,
  state TEXT NOT NULL, attempt INTEGER NOT NULL, host_id TEXT, result TEXT, error TEXT, checkpoint TEXT,
  messages_in INTEGER NOT NULL DEFAULT 0, messages_out INTEGER NOT NULL DEFAULT 0,
  root INTEGER, seq INTEGER, failures INTEGER NOT NULL DEFAULT 0, losses INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS programs (hash TEXT PRIMARY KEY, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, admin INTEGER NOT NULL, created_at INTEGER NOT NULL,
  scope TEXT NOT NULL DEFAULT 'submit', owner TEXT, expires_at INTEGER, revoked_at INTEGER, quotas TEXT
);
CREATE TABLE IF NOT EXISTS hosts (
  host_id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, user_agent TEXT NOT NULL,
  created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, done INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS volunteers (
  volunteer_id TEXT PRIMARY KEY, allowance INTEGER NOT NULL, returned INTEGER NOT NULL, dropped INTEGER NOT NULL,
  validated INTEGER NOT NULL, invalid INTEGER NOT NULL, streak INTEGER NOT NULL, trusted INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS volunteers_updated ON volunteers(updated_at);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, id);
CREATE TABLE IF NOT EXISTS probe (pad BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS task_images (tid TEXT PRIMARY KEY, job_id TEXT NOT NULL, image BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS task_images_job ON task_images(job_id);
CREATE TABLE IF NOT EXISTS task_keepers (tid TEXT PRIMARY KEY, job_id TEXT NOT NULL, kept TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS task_keepers_job ON task_keepers(job_id);
CREATE TABLE IF NOT EXISTS vm_states (job_id TEXT PRIMARY KEY, state TEXT NOT NULL);
`;

/**
 * A job's tasks are read by index (pages, results in input order); the partial indexes hold only
 * the few rows a question is about, so a job of millions is never scanned: its pending roots
 * (the task window pages them in), what a restart holds in memory or must know ended badly
 * (spawned tasks, running ones, failed ones), and root outcomes by completion cursor.
 */
export const INDEXES = `
CREATE INDEX IF NOT EXISTS tasks_job ON tasks(job_id, idx);
CREATE INDEX IF NOT EXISTS tasks_pending_roots ON tasks(job_id, idx) WHERE state = 'pending' AND root IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_restart ON tasks(job_id, idx) WHERE root IS NULL OR state IN ('running', 'failed');
CREATE INDEX IF NOT EXISTS tasks_outcomes ON tasks(job_id, seq) WHERE seq IS NOT NULL;
`;

/**
 * A file made before tokens had scopes: admin tokens keep everything, the others submit, and
 * each owns the jobs it submitted (a job's owner is the id of the token that made it).
 */
const TOKEN_SCOPES = `
ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'submit';
ALTER TABLE tokens ADD COLUMN owner TEXT;
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;
UPDATE tokens SET scope = CASE WHEN admin = 1 THEN 'admin' ELSE 'submit' END, owner = id;
`;

/** The same condition as the `tasks_restart` index's, so that SQLite uses it. */
export const RESTART_ROWS = `(root IS NULL OR state IN ('running', 'failed'))`;

/**
 * A file made before jobs had tallies and tasks had input places and completion cursors: roots
 * were the first tasks, in input order, and their outcomes get cursors in that order.
 */
const BACKFILL = `
UPDATE tasks SET root = idx WHERE parent IS NULL;
UPDATE tasks SET seq = idx + 1 WHERE parent IS NULL AND state IN ('done', 'failed');
UPDATE jobs SET tally = json_object(
  'done', (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.state = 'done'),
  'failed', (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.state = 'failed'),
  'cancelled', (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.state = 'cancelled'),
  'rootsEnded', (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.parent IS NULL AND t.state IN ('done', 'failed', 'cancelled')),
  'rootsFailed', (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.parent IS NULL AND t.state = 'failed'),
  'firstFailure', (SELECT json_extract(t.error, '$.message') FROM tasks t WHERE t.job_id = jobs.id AND t.parent IS NULL AND t.state = 'failed' ORDER BY t.idx LIMIT 1),
  'resultSeq', COALESCE((SELECT MAX(t.seq) FROM tasks t WHERE t.job_id = jobs.id), 0)
) WHERE tally IS NULL;
`;

/** Adds what a file made by an older coordinator lacks, and fills it in from what it has. */
export function migrate(db: Database.Database): void {
  const columns = (table: string) => new Set((db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name));
  const jobs = columns('jobs');
  const tasks = columns('tasks');
  if (!columns('tokens').has('scope')) db.transaction(() => db.exec(TOKEN_SCOPES))();
  if (!columns('tokens').has('quotas')) db.exec('ALTER TABLE tokens ADD COLUMN quotas TEXT');
  if (!tasks.has('failures')) db.exec('ALTER TABLE tasks ADD COLUMN failures INTEGER NOT NULL DEFAULT 0');
  if (!tasks.has('losses')) db.exec('ALTER TABLE tasks ADD COLUMN losses INTEGER NOT NULL DEFAULT 0');
  if (jobs.has('tally') && tasks.has('seq')) return;
  db.transaction(() => {
    if (!jobs.has('open')) db.exec('ALTER TABLE jobs ADD COLUMN open INTEGER NOT NULL DEFAULT 0');
    if (!jobs.has('tally')) db.exec('ALTER TABLE jobs ADD COLUMN tally TEXT');
    if (!tasks.has('root')) db.exec('ALTER TABLE tasks ADD COLUMN root INTEGER');
    if (!tasks.has('seq')) db.exec('ALTER TABLE tasks ADD COLUMN seq INTEGER');
    db.exec(BACKFILL);
  })();
}
