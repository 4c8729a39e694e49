import type pg from 'pg';
import { NotOwner } from './job-leases.ts';
import { jobsOf } from './postgres-batch.ts';
import type { WriteBatch } from './store.ts';

/** The database's clock in ms: leases are judged by one clock, whatever the coordinators' say. */
const NOW_MS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

type Db = pg.Pool | pg.PoolClient;

/**
 * The statements behind PostgreSQL's job leases (job-leases.ts, docs/cluster.md): which
 * coordinator runs which job, the cluster's members, event id blocks. The store runs them in its
 * write lanes, and `fence` inside each commit.
 */
export const leaseSql = {
  /**
   * A job first committed here is this coordinator's; a batch that writes to a job another
   * coordinator took over is refused whole (NotOwner). The owners' rows stay locked until the
   * batch commits, so a takeover waits for it: no write of the old owner lands after the new
   * owner read the job.
   */
  async fence(client: pg.PoolClient, { coordinator, leaseMs }: { coordinator: string; leaseMs: number }, batch: WriteBatch): Promise<void> {
    if (batch.jobs.length) {
      await client.query(`INSERT INTO job_owners SELECT unnest($1::text[]), $2, ${NOW_MS} + $3 ON CONFLICT (job_id) DO NOTHING`, [
        batch.jobs.filter((j) => j.finishedAt === null).map((j) => j.id),
        coordinator,
        leaseMs,
      ]);
    }
    const jobIds = jobsOf(batch);
    if (!jobIds.length) return;
    const { rows } = await client.query<{ job_id: string; coordinator: string }>(`SELECT job_id, coordinator FROM job_owners WHERE job_id = ANY($1) FOR SHARE`, [jobIds]);
    const others = rows.filter((r) => r.coordinator !== coordinator).map((r) => r.job_id);
    if (others.length) throw new NotOwner(others);
    const finished = batch.jobs.filter((j) => j.finishedAt !== null).map((j) => j.id);
    if (finished.length) await client.query(`DELETE FROM job_owners WHERE job_id = ANY($1)`, [finished]);
  },

  async renew(db: Db, coordinator: string, ttlMs: number): Promise<string[]> {
    const { rows } = await db.query<{ job_id: string }>(`UPDATE job_owners SET until = ${NOW_MS} + $2 WHERE coordinator = $1 RETURNING job_id`, [coordinator, ttlMs]);
    return rows.map((r) => r.job_id);
  },

  async claim(db: Db, coordinator: string, ttlMs: number, limit: number): Promise<string[]> {
    const { rows } = await db.query<{ job_id: string }>(
      `INSERT INTO job_owners
         SELECT j.id, $1, ${NOW_MS} + $2 FROM jobs j LEFT JOIN job_owners o ON o.job_id = j.id
         WHERE j.state IN ('queued', 'running') AND (o.job_id IS NULL OR o.until < ${NOW_MS} OR o.coordinator = $1)
         ORDER BY j.created_at LIMIT $3
       ON CONFLICT (job_id) DO UPDATE SET coordinator = excluded.coordinator, until = excluded.until
         WHERE job_owners.until < ${NOW_MS} OR job_owners.coordinator = excluded.coordinator
       RETURNING job_id`,
      [coordinator, ttlMs, limit],
    );
    return rows.map((r) => r.job_id);
  },

  async release(db: Db, coordinator: string): Promise<void> {
    await db.query(`UPDATE job_owners SET until = 0 WHERE coordinator = $1`, [coordinator]);
  },

  async runnerOf(db: Db, jobId: string): Promise<string | null> {
    const { rows } = await db.query<{ coordinator: string }>(`SELECT coordinator FROM job_owners WHERE job_id = $1 AND until >= ${NOW_MS}`, [jobId]);
    return rows[0]?.coordinator ?? null;
  },

  async members(db: Db, coordinator: string, memoryMs: number): Promise<string[]> {
    await db.query(`INSERT INTO coordinators VALUES ($1, ${NOW_MS}) ON CONFLICT (coordinator) DO UPDATE SET seen = excluded.seen`, [coordinator]);
    const { rows } = await db.query<{ coordinator: string }>(`SELECT coordinator FROM coordinators WHERE seen >= ${NOW_MS} - $1 ORDER BY coordinator`, [memoryMs]);
    return rows.map((r) => r.coordinator);
  },

  async eventIdBlock(db: Db): Promise<number> {
    const { rows } = await db.query<{ first: number }>(`SELECT nextval('event_id_blocks') AS first`);
    return rows[0]!.first;
  },
};
