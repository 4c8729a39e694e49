import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { type MigrationEvent, type TaskCounts, WebpvmError } from '@webpvm/vm-protocol';
import { OpenedFile, unavailableInSqlite } from './sqlite-health.ts';
import { FailingWrites, LANES } from './store-health.ts';
import {
  type EventRow,
  type HostRow,
  type JobRow,
  type OutcomeRow,
  type SummaryRow,
  type TaskRow,
  type TokenRow,
  type VolunteerRow,
  countsFromRows,
  eventFromRow,
  hostFromRow,
  jobFromRow,
  json,
  outcomeFromRow,
  parse,
  summaryFromRow,
  taskFromRow,
  tokenFromRow,
  volunteerFromRow,
} from './table-rows.ts';
import { INDEXES, RESTART_ROWS, TABLES, migrate } from './sqlite-schema.ts';
import type { VmState } from '@webpvm/task-sdk/vm';
import type {
  EventQuery,
  KeptImage,
  Store,
  StoredHost,
  StoredJob,
  StoredOutcome,
  StoredTask,
  StoredToken,
  StoredVolunteer,
  StoreHealth,
  TaskSummary,
  UnfinishedJob,
  WriteBatch,
} from './store.ts';

export interface SqliteStoreOptions {
  /** `full` (the default) or `normal`: see the pragma in the constructor. */
  synchronous: 'full' | 'normal';
}

/** The embedded default: one SQLite file under the data directory, written in WAL mode. */
export class SqliteStore implements Store {
  readonly engine = 'sqlite';
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly commitTx: (batch: WriteBatch) => void;
  private readonly appendEventsTx: (events: MigrationEvent[]) => void;
  private readonly probeTx: () => void;
  /** One prepared statement per shape of event query, made when first asked for. */
  private readonly eventQueries = new Map<string, Database.Statement>();
  private readonly failing = new FailingWrites();
  /** The file as it was opened; null in memory. */
  private readonly opened: OpenedFile | null;

  constructor(file: string, options: SqliteStoreOptions = { synchronous: 'full' }) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    /*
     * A host forgets an outcome, and a client trusts a 201, once told it is stored: that must hold
     * through a power loss, not only a crash of this process. In WAL mode NORMAL syncs only at
     * checkpoints, so the last commits live in the OS's cache and die with it; FULL syncs the WAL
     * at every commit. The write-behind makes one commit per turn of the event loop, not one per
     * result, so the sync is paid per batch. Measured (better-sqlite3, 2,000 commits of a job row
     * and 20 task results each, ext4 on a virtio disk, 2-core VM): NORMAL 0.11 ms a commit (~9,300/s),
     * FULL 0.25 ms (~4,000/s), p99 1.1 vs 1.6 ms. A disk whose sync is slower (a spinning one, a
     * network volume) pays more; WEBPVM_SQLITE_SYNCHRONOUS=normal trades the last commits before a
     * power loss for that time.
     */
    this.db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    this.db.exec(TABLES);
    migrate(this.db);
    this.db.exec(INDEXES);
    this.opened = file === ':memory:' ? null : new OpenedFile(file);
    const db = this.db;
    this.stmts = {
      upsertJob: db.prepare(`INSERT INTO jobs VALUES (@id, @owner, @name, @options, @program_hash, @state, @total,
        @created_at, @finished_at, @error, @attempts, @migrations, @open, @tally)
        ON CONFLICT(id) DO UPDATE SET options = excluded.options, state = excluded.state, total = excluded.total,
        finished_at = excluded.finished_at, error = excluded.error, attempts = excluded.attempts,
        migrations = excluded.migrations, open = excluded.open, tally = excluded.tally`),
      insertTask: db.prepare(`INSERT INTO tasks (tid, job_id, idx, parent, root, name, input, state, attempt, host_id)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      updateTask: db.prepare(`UPDATE tasks SET state = ?, attempt = ?, host_id = ?, result = ?, error = ?,
        messages_in = ?, messages_out = ?, seq = ?, failures = ?, losses = ? WHERE tid = ?`),
      setCheckpoint: db.prepare(`UPDATE tasks SET checkpoint = ? WHERE tid = ?`),
      putImage: db.prepare(`INSERT INTO task_images VALUES (?, ?, ?) ON CONFLICT(tid) DO UPDATE SET image = excluded.image`),
      forgetImage: db.prepare(`DELETE FROM task_images WHERE tid = ?`),
      jobImages: db.prepare(`SELECT tid, image FROM task_images WHERE job_id = ?`),
      forgetJobImages: db.prepare(`DELETE FROM task_images WHERE job_id = ?`),
      putKeeper: db.prepare(`INSERT INTO task_keepers VALUES (?, ?, ?) ON CONFLICT(tid) DO UPDATE SET kept = excluded.kept`),
      forgetKeeper: db.prepare(`DELETE FROM task_keepers WHERE tid = ?`),
      jobKeepers: db.prepare(`SELECT tid, kept FROM task_keepers WHERE job_id = ?`),
      forgetJobKeepers: db.prepare(`DELETE FROM task_keepers WHERE job_id = ?`),
      putVmState: db.prepare(`INSERT INTO vm_states VALUES (?, ?) ON CONFLICT(job_id) DO UPDATE SET state = excluded.state`),
      forgetVmState: db.prepare(`DELETE FROM vm_states WHERE job_id = ?`),
      vmState: db.prepare(`SELECT state FROM vm_states WHERE job_id = ?`),
      upsertHost: db.prepare(`INSERT INTO hosts VALUES (@host_id, @secret_hash, @user_agent, @created_at, @last_seen_at, @done)
        ON CONFLICT(host_id) DO UPDATE SET user_agent = excluded.user_agent, last_seen_at = excluded.last_seen_at,
        done = excluded.done`),
      upsertVolunteer: db.prepare(`INSERT INTO volunteers VALUES (@volunteer_id, @allowance, @returned, @dropped,
        @validated, @invalid, @streak, @trusted, @updated_at)
        ON CONFLICT(volunteer_id) DO UPDATE SET allowance = excluded.allowance, returned = excluded.returned,
        dropped = excluded.dropped, validated = excluded.validated, invalid = excluded.invalid,
        streak = excluded.streak, trusted = excluded.trusted, updated_at = excluded.updated_at`),
      volunteers: db.prepare(`SELECT * FROM volunteers ORDER BY volunteer_id`),
      forgetVolunteers: db.prepare(`DELETE FROM volunteers WHERE rowid IN (SELECT rowid FROM volunteers WHERE updated_at < ? LIMIT ?)`),
      unfinishedJobs: db.prepare(`SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY created_at`),
      residentTasks: db.prepare(`SELECT * FROM tasks WHERE job_id = ? AND ${RESTART_ROWS}
        AND (state = 'running' OR (root IS NULL AND state = 'pending')) ORDER BY idx`),
      endedBadly: db.prepare(`SELECT idx FROM tasks WHERE job_id = ? AND ${RESTART_ROWS} AND state IN ('failed', 'cancelled') ORDER BY idx`),
      spawnedCount: db.prepare(`SELECT COUNT(*) FROM tasks WHERE job_id = ? AND ${RESTART_ROWS} AND root IS NULL`),
      pendingRootIndexes: db.prepare(`SELECT idx FROM tasks WHERE job_id = ? AND state = 'pending' AND root IS NOT NULL ORDER BY idx`),
      pendingRoots: db.prepare(`SELECT * FROM tasks WHERE job_id = ? AND state = 'pending' AND root IS NOT NULL
        AND idx >= ? AND idx < ? ORDER BY idx LIMIT ?`),
      cancelPendingRoots: db.prepare(`UPDATE tasks SET state = 'cancelled' WHERE rowid IN (SELECT rowid FROM tasks
        WHERE job_id = ? AND state = 'pending' AND root IS NOT NULL ORDER BY idx LIMIT ?)`),
      cancelledWithPending: db.prepare(`SELECT id FROM jobs j WHERE state = 'cancelled'
        AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'pending' AND t.root IS NOT NULL)`),
      getJob: db.prepare(`SELECT * FROM jobs WHERE id = ?`),
      listJobs: db.prepare(`SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?`),
      listJobsOf: db.prepare(`SELECT * FROM jobs WHERE owner = ? ORDER BY created_at DESC, id DESC LIMIT ?`),
      counts: db.prepare(`SELECT state, COUNT(*) AS n FROM tasks WHERE job_id = ? GROUP BY state`),
      resultsInOrder: db.prepare(`SELECT idx, result FROM tasks WHERE job_id = ? AND idx > ? AND root IS NOT NULL ORDER BY idx LIMIT ?`),
      outcomesAfter: db.prepare(`SELECT seq, root, state, result, error FROM tasks WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?`),
      tasksPage: db.prepare(`SELECT tid, idx, parent, state, attempt, host_id, messages_in, messages_out
        FROM tasks WHERE job_id = ? AND idx > ? ORDER BY idx LIMIT ?`),
      oldJob: db.prepare(`SELECT id, program_hash FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? ORDER BY finished_at LIMIT 1`),
      forgetTasks: db.prepare(`DELETE FROM tasks WHERE rowid IN (SELECT rowid FROM tasks WHERE job_id = ? LIMIT ?)`),
      forgetEvents: db.prepare(`DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE job_id = ? LIMIT ?)`),
      forgetJob: db.prepare(`DELETE FROM jobs WHERE id = ?`),
      forgetProgram: db.prepare(`DELETE FROM programs WHERE hash = ? AND NOT EXISTS (SELECT 1 FROM jobs WHERE program_hash = ?)`),
      putProgram: db.prepare(`INSERT OR IGNORE INTO programs VALUES (?, ?)`),
      getProgram: db.prepare(`SELECT source FROM programs WHERE hash = ?`),
      insertToken: db.prepare(`INSERT INTO tokens (id, name, hash, admin, created_at, scope, owner, expires_at, revoked_at, quotas)
        VALUES (@id, @name, @hash, @admin, @created_at, @scope, @owner, @expires_at, @revoked_at, @quotas)`),
      listTokens: db.prepare(`SELECT * FROM tokens ORDER BY created_at DESC, id LIMIT ?`),
      listTokensOf: db.prepare(`SELECT * FROM tokens WHERE owner = ? ORDER BY created_at DESC, id LIMIT ?`),
      getToken: db.prepare(`SELECT * FROM tokens WHERE id = ?`),
      revokeToken: db.prepare(`UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`),
      findToken: db.prepare(`SELECT * FROM tokens WHERE hash = ?`),
      countTokens: db.prepare(`SELECT COUNT(*) AS n FROM tokens`),
      getHost: db.prepare(`SELECT * FROM hosts WHERE host_id = ?`),
      insertEvent: db.prepare(`INSERT INTO events VALUES (?, ?, ?, ?)`),
      lastEventId: db.prepare(`SELECT COALESCE(MAX(id), 0) AS id FROM events`),
      insertProbe: db.prepare(`INSERT INTO probe VALUES (zeroblob(?))`),
      clearProbe: db.prepare(`DELETE FROM probe`),
    };
    // A pad of a page needs a page of its own: the probe fails where a write that adds rows would.
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    this.probeTx = db.transaction(() => {
      this.stmts.insertProbe.run(pageSize);
      this.stmts.clearProbe.run();
    });
    this.appendEventsTx = db.transaction((events: MigrationEvent[]) => {
      for (const { id, ...body } of events) this.stmts.insertEvent.run(id, body.jobId, body.type, json(body));
    });
    this.commitTx = db.transaction((batch: WriteBatch) => {
      for (const j of batch.jobs) {
        this.stmts.upsertJob.run({
          id: j.id,
          owner: j.owner,
          name: j.name,
          options: json(j.options),
          program_hash: j.programHash,
          state: j.state,
          total: j.total,
          created_at: j.createdAt,
          finished_at: j.finishedAt,
          error: j.error ? json(j.error) : null,
          attempts: j.attempts,
          migrations: j.migrations,
          open: j.open ? 1 : 0,
          tally: json(j.tally),
        });
      }
      for (const t of batch.newTasks) {
        this.stmts.insertTask.run(t.tid, t.jobId, t.index, t.parent, t.root, t.name, json(t.input), t.state, t.attempt, t.hostId);
      }
      for (const u of batch.taskUpdates) {
        const result = u.state === 'done' ? json(u.result) : null;
        this.stmts.updateTask.run(u.state, u.attempt, u.hostId, result, u.error ? json(u.error) : null, u.messagesIn, u.messagesOut, u.seq, u.failures, u.losses, u.tid);
      }
      for (const c of batch.checkpoints) this.stmts.setCheckpoint.run(json(c.checkpoint), c.tid);
      for (const i of batch.images) {
        if (i.image) this.stmts.putImage.run(i.tid, i.jobId, i.image);
        else this.stmts.forgetImage.run(i.tid);
        if (i.kept) this.stmts.putKeeper.run(i.tid, i.jobId, json(i.kept));
        else this.stmts.forgetKeeper.run(i.tid);
      }
      for (const v of batch.vmStates) {
        if (v.state) this.stmts.putVmState.run(v.jobId, json(v.state));
        else this.stmts.forgetVmState.run(v.jobId);
      }
      for (const h of batch.hosts) {
        this.stmts.upsertHost.run({
          host_id: h.hostId,
          secret_hash: h.secretHash,
          user_agent: h.userAgent,
          created_at: h.createdAt,
          last_seen_at: h.lastSeenAt,
          done: h.done,
        });
      }
      for (const v of batch.volunteers) {
        this.stmts.upsertVolunteer.run({
          volunteer_id: v.volunteerId,
          allowance: v.allowance,
          returned: v.returned,
          dropped: v.dropped,
          validated: v.validated,
          invalid: v.invalid,
          streak: v.streak,
          trusted: v.trusted ? 1 : 0,
          updated_at: v.updatedAt,
        });
      }
    });
  }

  async commit(batch: WriteBatch): Promise<void> {
    this.write(LANES.commits, () => this.commitTx(batch));
  }

  async loadUnfinished(jobIds?: readonly string[]): Promise<UnfinishedJob[]> {
    const named = jobIds && new Set(jobIds);
    return this.read(() =>
      (this.stmts.unfinishedJobs.all() as JobRow[]).filter((row) => !named || named.has(row.id)).map((row) => {
        const images = new Map((this.stmts.jobImages.all(row.id) as { tid: string; image: Buffer }[]).map((i) => [i.tid, new Uint8Array(i.image)]));
        const keepers = new Map((this.stmts.jobKeepers.all(row.id) as { tid: string; kept: string }[]).map((k) => [k.tid, JSON.parse(k.kept) as KeptImage]));
        const vmState = this.stmts.vmState.pluck().get(row.id) as string | undefined;
        return {
          job: jobFromRow(row),
          tasks: (this.stmts.residentTasks.all(row.id) as TaskRow[]).map((t) => ({ ...taskFromRow(t), image: images.get(t.tid) ?? null, kept: keepers.get(t.tid) ?? null })),
          pendingRoots: indexes(this.stmts.pendingRootIndexes, row.id),
          endedBadly: indexes(this.stmts.endedBadly, row.id),
          spawned: this.stmts.spawnedCount.pluck().get(row.id) as number,
          vmState: vmState === undefined ? null : (JSON.parse(vmState) as VmState),
        };
      }),
    );
  }

  async pendingRoots(jobId: string, from: number, until: number, limit: number): Promise<StoredTask[]> {
    return this.read(() => (this.stmts.pendingRoots.all(jobId, from, until, limit) as TaskRow[]).map(taskFromRow));
  }

  async forgetFinished(before: number, rows: number): Promise<{ jobs: number; rows: number }> {
    return this.write(LANES.oneOff, this.db.transaction(() => {
      const job = this.stmts.oldJob.get(before) as { id: string; program_hash: string } | undefined;
      if (job === undefined) return { jobs: 0, rows: 0 };
      let deleted = this.stmts.forgetTasks.run(job.id, rows).changes;
      if (deleted < rows) deleted += this.stmts.forgetEvents.run(job.id, rows - deleted).changes;
      if (deleted >= rows) return { jobs: 0, rows: deleted };
      this.stmts.forgetJob.run(job.id);
      this.stmts.forgetJobImages.run(job.id);
      this.stmts.forgetJobKeepers.run(job.id);
      this.stmts.forgetVmState.run(job.id);
      deleted += 1 + this.stmts.forgetProgram.run(job.program_hash, job.program_hash).changes;
      return { jobs: 1, rows: deleted };
    }));
  }

  async loadVolunteers(): Promise<StoredVolunteer[]> {
    return this.read(() => (this.stmts.volunteers.all() as VolunteerRow[]).map(volunteerFromRow));
  }

  async forgetVolunteers(before: number, rows: number): Promise<number> {
    return this.write(LANES.oneOff, () => this.stmts.forgetVolunteers.run(before, rows).changes);
  }

  async cancelPendingRoots(jobId: string, limit: number): Promise<number> {
    return this.write(LANES.oneOff, () => this.stmts.cancelPendingRoots.run(jobId, limit).changes);
  }

  async cancelledWithPending(): Promise<string[]> {
    return this.read(() => this.stmts.cancelledWithPending.pluck().all() as string[]);
  }

  async getJob(id: string): Promise<StoredJob | null> {
    const row = this.read(() => this.stmts.getJob.get(id) as JobRow | undefined);
    return row ? jobFromRow(row) : null;
  }

  async listJobs(query: { owner: string | null; limit: number }): Promise<StoredJob[]> {
    const rows = this.read(() => (query.owner === null ? this.stmts.listJobs.all(query.limit) : this.stmts.listJobsOf.all(query.owner, query.limit)));
    return (rows as JobRow[]).map(jobFromRow);
  }

  async taskCounts(jobId: string): Promise<TaskCounts> {
    return countsFromRows(this.read(() => this.stmts.counts.all(jobId) as { state: string; n: number }[]));
  }

  async resultsInOrder(jobId: string, afterIndex: number, limit: number): Promise<{ index: number; result: unknown }[]> {
    const rows = this.read(() => this.stmts.resultsInOrder.all(jobId, afterIndex, limit) as { idx: number; result: string | null }[]);
    return rows.map((r) => ({ index: r.idx, result: parse(r.result) }));
  }

  async outcomesAfter(jobId: string, afterSeq: number, limit: number): Promise<StoredOutcome[]> {
    return this.read(() => this.stmts.outcomesAfter.all(jobId, afterSeq, limit) as OutcomeRow[]).map(outcomeFromRow);
  }

  async tasksPage(jobId: string, afterIndex: number, limit: number): Promise<TaskSummary[]> {
    return this.read(() => this.stmts.tasksPage.all(jobId, afterIndex, limit) as SummaryRow[]).map(summaryFromRow);
  }

  async putProgram(hash: string, source: string): Promise<void> {
    this.write(LANES.oneOff, () => this.stmts.putProgram.run(hash, source));
  }

  async getProgram(hash: string): Promise<string | null> {
    const row = this.read(() => this.stmts.getProgram.get(hash) as { source: string } | undefined);
    return row?.source ?? null;
  }

  async insertToken(t: StoredToken): Promise<void> {
    this.write(LANES.oneOff, () =>
      this.stmts.insertToken.run({
        id: t.id,
        name: t.name,
        hash: t.hash,
        admin: t.scope === 'admin' ? 1 : 0,
        created_at: t.createdAt,
        scope: t.scope,
        owner: t.owner,
        expires_at: t.expiresAt,
        revoked_at: t.revokedAt,
        quotas: json(t.quotas),
      }),
    );
  }

  async findToken(hash: string): Promise<StoredToken | null> {
    const row = this.read(() => this.stmts.findToken.get(hash) as TokenRow | undefined);
    return row ? tokenFromRow(row) : null;
  }

  async listTokens(owner: string | null, limit: number): Promise<StoredToken[]> {
    const rows = this.read(() => (owner === null ? this.stmts.listTokens.all(limit) : this.stmts.listTokensOf.all(owner, limit)));
    return (rows as TokenRow[]).map(tokenFromRow);
  }

  async getToken(id: string): Promise<StoredToken | null> {
    const row = this.read(() => this.stmts.getToken.get(id) as TokenRow | undefined);
    return row ? tokenFromRow(row) : null;
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    return this.write(LANES.oneOff, () => this.stmts.revokeToken.run(at, id).changes === 1);
  }

  async countTokens(): Promise<number> {
    return this.read(() => (this.stmts.countTokens.get() as { n: number }).n);
  }

  async getHost(hostId: string): Promise<StoredHost | null> {
    const row = this.read(() => this.stmts.getHost.get(hostId) as HostRow | undefined);
    return row ? hostFromRow(row) : null;
  }

  async appendEvents(events: MigrationEvent[]): Promise<void> {
    this.write(LANES.events, () => this.appendEventsTx(events));
  }

  async listEvents(query: EventQuery): Promise<MigrationEvent[]> {
    const latest = query.afterId === null;
    const rows = this.read(
      () =>
        this.eventQuery(query.jobId !== null, query.owner !== null, latest).all({
          job: query.jobId,
          owner: query.owner,
          after: query.afterId ?? 0,
          limit: query.limit,
        }) as EventRow[],
    );
    if (latest) rows.reverse();
    return rows.map(eventFromRow);
  }

  async lastEventId(): Promise<number> {
    return this.read(() => (this.stmts.lastEventId.get() as { id: number }).id);
  }

  health(): StoreHealth {
    return this.failing.health();
  }

  /** A write to see whether the store takes writes again (store-health.ts `probeDue`). */
  async probe(): Promise<StoreHealth> {
    if (!this.failing.probeDue()) return this.health();
    try {
      this.write(LANES.oneOff, this.probeTx);
    } catch (error) {
      if (!(error instanceof WebpvmError)) throw error;
    }
    return this.health();
  }

  /** Runs a write of `lane`: the lane is failing after it fails for the store's sake, and clear after it succeeds. */
  private write<T>(lane: string, run: () => T): T {
    try {
      this.opened?.check();
      const result = run();
      this.failing.succeeded(lane);
      return result;
    } catch (error) {
      throw this.failing.thrown(lane, error, unavailableInSqlite(error));
    }
  }

  /** A read that succeeds says nothing of writes (a full disk still reads); one that fails says the store is failing. */
  private read<T>(run: () => T): T {
    try {
      return run();
    } catch (error) {
      throw this.failing.thrown(LANES.oneOff, error, unavailableInSqlite(error));
    }
  }

  /** A filter left out of the SQL, rather than matched against NULL, lets SQLite use the index it needs. */
  private eventQuery(byJob: boolean, byOwner: boolean, latest: boolean): Database.Statement {
    const key = `${byJob}:${byOwner}:${latest}`;
    let statement = this.eventQueries.get(key);
    if (!statement) {
      statement = this.db.prepare(`SELECT e.id, e.body FROM events e${byOwner ? ' JOIN jobs j ON j.id = e.job_id' : ''}
        WHERE e.id > @after${byJob ? ' AND e.job_id = @job' : ''}${byOwner ? ' AND j.owner = @owner' : ''}
        ORDER BY e.id${latest ? ' DESC' : ''} LIMIT @limit`);
      this.eventQueries.set(key, statement);
    }
    return statement;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** Indexes read from a one-column query, kept compact: a big job's pending roots may be millions. */
function indexes(statement: Database.Statement, ...params: unknown[]): Uint32Array {
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
