import pg from 'pg';
import { type MigrationEvent, type TaskCounts, WebpvmError } from '@webpvm/vm-protocol';
import type { VmState } from '@webpvm/task-sdk/vm';
import type { JobLeases } from './job-leases.ts';
import { leaseSql } from './postgres-leases.ts';
import { unavailableInPostgres } from './postgres-health.ts';
import { writeBatch } from './postgres-batch.ts';
import { migrate } from './postgres-schema.ts';
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

/** Rows of indexes read per query when a restart reads a big job's pending roots. */
const INDEX_PAGE = 100_000;

/** The same condition as the `tasks_restart` index's, so that the planner uses it. */
const RESTART_ROWS = `(root IS NULL OR state IN ('running', 'failed'))`;

/** BIGINT (times, counters) and COUNT(*) as numbers: every value stored here is below 2^53. */
const INT8 = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export interface PostgresStoreOptions {
  /** Connections at most (reads may run side by side; commits go one at a time). */
  maxConnections?: number;
  /**
   * The coordinator this store writes for, and how long a job it commits first is its own before
   * it must renew the lease (job-leases.ts). Without it the store takes no leases: tests of the store alone.
   */
  ownership?: { coordinator: string; leaseMs: number };
}

/**
 * PostgreSQL behind the same interface as SQLite (`DATABASE_URL`): what several coordinators
 * share. A write batch is one transaction of a few statements, each writing all of the batch's
 * rows of one table at once (`unnest` of arrays), so a commit costs round trips per table, not
 * per row. Commits are durable when they return: `synchronous_commit` is left at its default, on.
 */
export class PostgresStore implements Store, JobLeases {
  readonly engine = 'postgres';
  private readonly failing = new FailingWrites();

  private constructor(
    private readonly pool: pg.Pool,
    private readonly ownership: { coordinator: string; leaseMs: number } | null,
  ) {}

  get coordinator(): string {
    if (!this.ownership) throw new Error('this store was opened without a coordinator id');
    return this.ownership.coordinator;
  }

  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      types,
      // A server that is gone or hung turns into errors (503s), not requests that wait for ever.
      connectionTimeoutMillis: 5_000,
      query_timeout: 60_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle connection the server drops emits here; without a listener it would end the process.
    pool.on('error', () => undefined);
    const client = await pool.connect().catch(async (error: unknown) => {
      await pool.end();
      throw new WebpvmError('E_STORE_UNAVAILABLE', `cannot connect to PostgreSQL: ${error instanceof Error ? error.message : String(error)}`);
    });
    try {
      await migrate(client);
    } finally {
      client.release();
    }
    return new PostgresStore(pool, options.ownership ?? null);
  }

  async commit(batch: WriteBatch): Promise<void> {
    await this.write(LANES.commits, () =>
      this.transaction(async (client) => {
        if (this.ownership) await leaseSql.fence(client, this.ownership, batch);
        await writeBatch(client, batch);
      }),
    );
  }

  async renew(ttlMs: number): Promise<string[]> {
    return this.write(LANES.oneOff, () => leaseSql.renew(this.pool, this.coordinator, ttlMs));
  }

  async claim(ttlMs: number, limit: number): Promise<string[]> {
    return this.write(LANES.oneOff, () => leaseSql.claim(this.pool, this.coordinator, ttlMs, limit));
  }

  async release(): Promise<void> {
    await this.write(LANES.oneOff, () => leaseSql.release(this.pool, this.coordinator));
  }

  async runnerOf(jobId: string): Promise<string | null> {
    return this.read(() => leaseSql.runnerOf(this.pool, jobId));
  }

  async members(memoryMs: number): Promise<string[]> {
    return this.write(LANES.oneOff, () => leaseSql.members(this.pool, this.coordinator, memoryMs));
  }

  async eventIdBlock(): Promise<number> {
    return this.write(LANES.oneOff, () => leaseSql.eventIdBlock(this.pool));
  }

  async loadUnfinished(jobIds?: readonly string[]): Promise<UnfinishedJob[]> {
    return this.read(async () => {
      const { rows } = jobIds
        ? await this.pool.query<JobRow>(`SELECT * FROM jobs WHERE state IN ('queued', 'running') AND id = ANY($1) ORDER BY created_at`, [jobIds])
        : await this.pool.query<JobRow>(`SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY created_at`);
      const out: UnfinishedJob[] = [];
      for (const row of rows) {
        const [images, keepers, vm, resident, endedBadly, spawned, pendingRoots] = await Promise.all([
          this.pool.query<{ tid: string; image: Buffer }>(`SELECT tid, image FROM task_images WHERE job_id = $1`, [row.id]),
          this.pool.query<{ tid: string; kept: string }>(`SELECT tid, kept FROM task_keepers WHERE job_id = $1`, [row.id]),
          this.pool.query<{ state: string }>(`SELECT state FROM vm_states WHERE job_id = $1`, [row.id]),
          this.pool.query<TaskRow>(
            `SELECT * FROM tasks WHERE job_id = $1 AND ${RESTART_ROWS} AND (state = 'running' OR (root IS NULL AND state = 'pending')) ORDER BY idx`,
            [row.id],
          ),
          this.indexes(`job_id = $1 AND ${RESTART_ROWS} AND state IN ('failed', 'cancelled')`, row.id),
          this.pool.query<{ n: number }>(`SELECT COUNT(*) AS n FROM tasks WHERE job_id = $1 AND ${RESTART_ROWS} AND root IS NULL`, [row.id]),
          this.indexes(`job_id = $1 AND state = 'pending' AND root IS NOT NULL`, row.id),
        ]);
        const imageOf = new Map(images.rows.map((i) => [i.tid, new Uint8Array(i.image.buffer, i.image.byteOffset, i.image.byteLength)]));
        const keptOf = new Map(keepers.rows.map((k) => [k.tid, JSON.parse(k.kept) as KeptImage]));
        out.push({
          job: jobFromRow(row),
          tasks: resident.rows.map((t) => ({ ...taskFromRow(t), image: imageOf.get(t.tid) ?? null, kept: keptOf.get(t.tid) ?? null })),
          pendingRoots,
          endedBadly,
          spawned: spawned.rows[0]!.n,
          vmState: vm.rows[0] ? (JSON.parse(vm.rows[0].state) as VmState) : null,
        });
      }
      return out;
    });
  }

  async pendingRoots(jobId: string, from: number, until: number, limit: number): Promise<StoredTask[]> {
    const { rows } = await this.read(() =>
      this.pool.query<TaskRow>(
        `SELECT * FROM tasks WHERE job_id = $1 AND state = 'pending' AND root IS NOT NULL AND idx >= $2 AND idx < $3 ORDER BY idx LIMIT $4`,
        [jobId, from, until, limit],
      ),
    );
    return rows.map(taskFromRow);
  }

  async cancelPendingRoots(jobId: string, limit: number): Promise<number> {
    const { rowCount } = await this.write(LANES.oneOff, () =>
      this.pool.query(
        `UPDATE tasks SET state = 'cancelled' WHERE tid IN (SELECT tid FROM tasks
          WHERE job_id = $1 AND state = 'pending' AND root IS NOT NULL ORDER BY idx LIMIT $2)`,
        [jobId, limit],
      ),
    );
    return rowCount ?? 0;
  }

  async cancelledWithPending(): Promise<string[]> {
    const { rows } = await this.read(() =>
      this.pool.query<{ id: string }>(`SELECT id FROM jobs j WHERE state = 'cancelled'
        AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'pending' AND t.root IS NOT NULL)`),
    );
    return rows.map((r) => r.id);
  }

  async getJob(id: string): Promise<StoredJob | null> {
    const { rows } = await this.read(() => this.pool.query<JobRow>(`SELECT * FROM jobs WHERE id = $1`, [id]));
    return rows[0] ? jobFromRow(rows[0]) : null;
  }

  async listJobs(query: { owner: string | null; limit: number }): Promise<StoredJob[]> {
    const { rows } = await this.read(() =>
      query.owner === null
        ? this.pool.query<JobRow>(`SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1`, [query.limit])
        : this.pool.query<JobRow>(`SELECT * FROM jobs WHERE owner = $1 ORDER BY created_at DESC, id DESC LIMIT $2`, [query.owner, query.limit]),
    );
    return rows.map(jobFromRow);
  }

  async taskCounts(jobId: string): Promise<TaskCounts> {
    const { rows } = await this.read(() => this.pool.query<{ state: string; n: number }>(`SELECT state, COUNT(*) AS n FROM tasks WHERE job_id = $1 GROUP BY state`, [jobId]));
    return countsFromRows(rows);
  }

  async resultsInOrder(jobId: string, afterIndex: number, limit: number): Promise<{ index: number; result: unknown }[]> {
    const { rows } = await this.read(() =>
      this.pool.query<{ idx: number; result: string | null }>(
        `SELECT idx, result FROM tasks WHERE job_id = $1 AND idx > $2 AND root IS NOT NULL ORDER BY idx LIMIT $3`,
        [jobId, afterIndex, limit],
      ),
    );
    return rows.map((r) => ({ index: r.idx, result: parse(r.result) }));
  }

  async outcomesAfter(jobId: string, afterSeq: number, limit: number): Promise<StoredOutcome[]> {
    const { rows } = await this.read(() =>
      this.pool.query<OutcomeRow>(`SELECT seq, root, state, result, error FROM tasks WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, [jobId, afterSeq, limit]),
    );
    return rows.map(outcomeFromRow);
  }

  async tasksPage(jobId: string, afterIndex: number, limit: number): Promise<TaskSummary[]> {
    const { rows } = await this.read(() =>
      this.pool.query<SummaryRow>(
        `SELECT tid, idx, parent, state, attempt, host_id, messages_in, messages_out FROM tasks WHERE job_id = $1 AND idx > $2 ORDER BY idx LIMIT $3`,
        [jobId, afterIndex, limit],
      ),
    );
    return rows.map(summaryFromRow);
  }

  async forgetFinished(before: number, rows: number): Promise<{ jobs: number; rows: number }> {
    return this.write(LANES.oneOff, () =>
      this.transaction(async (client) => {
        const old = await client.query<{ id: string; program_hash: string }>(
          `SELECT id, program_hash FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1 ORDER BY finished_at LIMIT 1`,
          [before],
        );
        const job = old.rows[0];
        if (!job) return { jobs: 0, rows: 0 };
        let deleted = (await client.query(`DELETE FROM tasks WHERE tid IN (SELECT tid FROM tasks WHERE job_id = $1 LIMIT $2)`, [job.id, rows])).rowCount ?? 0;
        if (deleted < rows) {
          deleted += (await client.query(`DELETE FROM events WHERE id IN (SELECT id FROM events WHERE job_id = $1 LIMIT $2)`, [job.id, rows - deleted])).rowCount ?? 0;
        }
        if (deleted >= rows) return { jobs: 0, rows: deleted };
        await client.query(`DELETE FROM jobs WHERE id = $1`, [job.id]);
        await client.query(`DELETE FROM task_images WHERE job_id = $1`, [job.id]);
        await client.query(`DELETE FROM task_keepers WHERE job_id = $1`, [job.id]);
        await client.query(`DELETE FROM vm_states WHERE job_id = $1`, [job.id]);
        const program = await client.query(`DELETE FROM programs WHERE hash = $1 AND NOT EXISTS (SELECT 1 FROM jobs WHERE program_hash = $1)`, [job.program_hash]);
        return { jobs: 1, rows: deleted + 1 + (program.rowCount ?? 0) };
      }),
    );
  }

  async loadVolunteers(): Promise<StoredVolunteer[]> {
    const { rows } = await this.read(() => this.pool.query<VolunteerRow>(`SELECT * FROM volunteers ORDER BY volunteer_id`));
    return rows.map(volunteerFromRow);
  }

  async forgetVolunteers(before: number, rows: number): Promise<number> {
    const { rowCount } = await this.write(LANES.oneOff, () =>
      this.pool.query(`DELETE FROM volunteers WHERE volunteer_id IN (SELECT volunteer_id FROM volunteers WHERE updated_at < $1 LIMIT $2)`, [before, rows]),
    );
    return rowCount ?? 0;
  }

  async putProgram(hash: string, source: string): Promise<void> {
    await this.write(LANES.oneOff, () => this.pool.query(`INSERT INTO programs VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING`, [hash, source]));
  }

  async getProgram(hash: string): Promise<string | null> {
    const { rows } = await this.read(() => this.pool.query<{ source: string }>(`SELECT source FROM programs WHERE hash = $1`, [hash]));
    return rows[0]?.source ?? null;
  }

  async insertToken(t: StoredToken): Promise<void> {
    await this.write(LANES.oneOff, () =>
      this.pool.query(
        `INSERT INTO tokens (id, name, hash, created_at, scope, owner, expires_at, revoked_at, quotas) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [t.id, t.name, t.hash, t.createdAt, t.scope, t.owner, t.expiresAt, t.revokedAt, json(t.quotas)],
      ),
    );
  }

  async findToken(hash: string): Promise<StoredToken | null> {
    const { rows } = await this.read(() => this.pool.query<TokenRow>(`SELECT * FROM tokens WHERE hash = $1`, [hash]));
    return rows[0] ? tokenFromRow(rows[0]) : null;
  }

  async listTokens(owner: string | null, limit: number): Promise<StoredToken[]> {
    const { rows } = await this.read(() =>
      owner === null
        ? this.pool.query<TokenRow>(`SELECT * FROM tokens ORDER BY created_at DESC, id LIMIT $1`, [limit])
        : this.pool.query<TokenRow>(`SELECT * FROM tokens WHERE owner = $1 ORDER BY created_at DESC, id LIMIT $2`, [owner, limit]),
    );
    return rows.map(tokenFromRow);
  }

  async getToken(id: string): Promise<StoredToken | null> {
    const { rows } = await this.read(() => this.pool.query<TokenRow>(`SELECT * FROM tokens WHERE id = $1`, [id]));
    return rows[0] ? tokenFromRow(rows[0]) : null;
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    const { rowCount } = await this.write(LANES.oneOff, () => this.pool.query(`UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, [at, id]));
    return rowCount === 1;
  }

  async countTokens(): Promise<number> {
    const { rows } = await this.read(() => this.pool.query<{ n: number }>(`SELECT COUNT(*) AS n FROM tokens`));
    return rows[0]!.n;
  }

  async getHost(hostId: string): Promise<StoredHost | null> {
    const { rows } = await this.read(() => this.pool.query<HostRow>(`SELECT * FROM hosts WHERE host_id = $1`, [hostId]));
    return rows[0] ? hostFromRow(rows[0]) : null;
  }

  async appendEvents(events: MigrationEvent[]): Promise<void> {
    if (events.length === 0) return;
    const ids: number[] = [];
    const jobs: string[] = [];
    const kinds: string[] = [];
    const bodies: string[] = [];
    for (const { id, ...body } of events) {
      ids.push(id);
      jobs.push(body.jobId);
      kinds.push(body.type);
      bodies.push(json(body));
    }
    await this.write(LANES.events, () =>
      this.pool.query(`INSERT INTO events SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])`, [ids, jobs, kinds, bodies]),
    );
  }

  async listEvents(query: EventQuery): Promise<MigrationEvent[]> {
    const latest = query.afterId === null;
    const params: unknown[] = [query.afterId ?? 0];
    let where = 'e.id > $1';
    if (query.jobId !== null) where += ` AND e.job_id = $${params.push(query.jobId)}`;
    if (query.owner !== null) where += ` AND j.owner = $${params.push(query.owner)}`;
    const sql = `SELECT e.id, e.body FROM events e${query.owner !== null ? ' JOIN jobs j ON j.id = e.job_id' : ''}
      WHERE ${where} ORDER BY e.id${latest ? ' DESC' : ''} LIMIT $${params.push(query.limit)}`;
    const { rows } = await this.read(() => this.pool.query<EventRow>(sql, params));
    if (latest) rows.reverse();
    return rows.map(eventFromRow);
  }

  async lastEventId(): Promise<number> {
    const { rows } = await this.read(() => this.pool.query<{ id: number }>(`SELECT COALESCE(MAX(id), 0) AS id FROM events`));
    return rows[0]!.id;
  }

  health(): StoreHealth {
    return this.failing.health();
  }

  /** A write to see whether the store takes writes again (store-health.ts `probeDue`). */
  async probe(): Promise<StoreHealth> {
    if (!this.failing.probeDue()) return this.health();
    try {
      await this.write(LANES.oneOff, () =>
        this.transaction(async (client) => {
          await client.query(`INSERT INTO probe VALUES ($1)`, [Buffer.alloc(8192)]);
          await client.query(`DELETE FROM probe`);
        }),
      );
    } catch (error) {
      if (!(error instanceof WebpvmError)) throw error;
    }
    return this.health();
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** A big job's indexes matching `where`, read in pages and kept compact (a job may have millions). */
  private async indexes(where: string, jobId: string): Promise<Uint32Array> {
    let out = new Uint32Array(1024);
    let n = 0;
    for (let after = -1; ; ) {
      const { rows } = await this.pool.query<[number]>({
        text: `SELECT idx FROM tasks WHERE ${where} AND idx > $2 ORDER BY idx LIMIT $3`,
        values: [jobId, after, INDEX_PAGE],
        rowMode: 'array',
      });
      if (n + rows.length > out.length) {
        const grown = new Uint32Array(Math.max(out.length * 2, n + rows.length));
        grown.set(out.subarray(0, n));
        out = grown;
      }
      for (const [index] of rows) out[n++] = index;
      if (rows.length < INDEX_PAGE) return out.slice(0, n);
      after = out[n - 1]!;
    }
  }

  private async transaction<T>(run: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await run(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      // A connection that could not even roll back is not handed to the next write.
      client.release(broken);
    }
  }

  private async write<T>(lane: string, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      this.failing.succeeded(lane);
      return result;
    } catch (error) {
      throw this.failing.thrown(lane, error, unavailableInPostgres(error));
    }
  }

  private async read<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.failing.thrown(LANES.oneOff, error, unavailableInPostgres(error));
    }
  }

}
