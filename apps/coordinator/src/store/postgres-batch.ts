import type pg from 'pg';
import { parseTid } from '@webpvm/vm-protocol';
import { json } from './table-rows.ts';
import type { WriteBatch } from './store.ts';

/*
 * A write batch on PostgreSQL: one statement per table it touches, all its rows of that table at
 * once as one array per column, unnested (postgres-store.ts runs them in one transaction).
 */

/** The jobs a batch writes to, from their rows and their tasks' ids. */
export function jobsOf(batch: WriteBatch): string[] {
  const ids = new Set<string>();
  for (const j of batch.jobs) ids.add(j.id);
  for (const t of batch.newTasks) ids.add(t.jobId);
  for (const i of batch.images) ids.add(i.jobId);
  for (const v of batch.vmStates) ids.add(v.jobId);
  for (const { tid } of [...batch.taskUpdates, ...batch.checkpoints]) ids.add(parseTid(tid).jobId);
  return [...ids];
}

/** One statement per table of the batch, rows passed as arrays (one per column) and unnested. */
export async function writeBatch(client: pg.PoolClient, batch: WriteBatch): Promise<void> {
  if (batch.jobs.length) {
    const j = columns(batch.jobs, (r) => [
      r.id,
      r.owner,
      r.name,
      json(r.options),
      r.programHash,
      r.state,
      r.total,
      r.createdAt,
      r.finishedAt,
      r.error ? json(r.error) : null,
      r.attempts,
      r.migrations,
      r.open ? 1 : 0,
      json(r.tally),
    ]);
    await client.query(
      `INSERT INTO jobs SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
        $8::bigint[], $9::bigint[], $10::text[], $11::bigint[], $12::bigint[], $13::int[], $14::text[])
       ON CONFLICT (id) DO UPDATE SET options = excluded.options, state = excluded.state, total = excluded.total,
        finished_at = excluded.finished_at, error = excluded.error, attempts = excluded.attempts,
        migrations = excluded.migrations, open = excluded.open, tally = excluded.tally`,
      j,
    );
  }
  if (batch.newTasks.length) {
    const t = columns(batch.newTasks, (r) => [r.tid, r.jobId, r.index, r.parent, r.root, r.name, json(r.input), r.state, r.attempt, r.hostId]);
    await client.query(
      `INSERT INTO tasks (tid, job_id, idx, parent, root, name, input, state, attempt, host_id)
       SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[])`,
      t,
    );
  }
  if (batch.taskUpdates.length) {
    const u = columns(batch.taskUpdates, (r) => [
      r.tid,
      r.state,
      r.attempt,
      r.hostId,
      r.state === 'done' ? json(r.result) : null,
      r.error ? json(r.error) : null,
      r.messagesIn,
      r.messagesOut,
      r.seq,
      r.failures,
      r.losses,
    ]);
    await client.query(
      `UPDATE tasks t SET state = u.state, attempt = u.attempt, host_id = u.host_id, result = u.result, error = u.error,
        messages_in = u.messages_in, messages_out = u.messages_out, seq = u.seq, failures = u.failures, losses = u.losses
       FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::int[], $11::int[])
        AS u(tid, state, attempt, host_id, result, error, messages_in, messages_out, seq, failures, losses)
       WHERE t.tid = u.tid`,
      u,
    );
  }
  if (batch.checkpoints.length) {
    const c = columns(batch.checkpoints, (r) => [r.tid, json(r.checkpoint)]);
    await client.query(`UPDATE tasks t SET checkpoint = c.checkpoint FROM unnest($1::text[], $2::text[]) AS c(tid, checkpoint) WHERE t.tid = c.tid`, c);
  }
  for (const i of batch.images) {
    if (i.image) {
      await client.query(`INSERT INTO task_images VALUES ($1, $2, $3) ON CONFLICT (tid) DO UPDATE SET image = excluded.image`, [
        i.tid,
        i.jobId,
        Buffer.from(i.image.buffer, i.image.byteOffset, i.image.byteLength),
      ]);
    } else await client.query(`DELETE FROM task_images WHERE tid = $1`, [i.tid]);
    if (i.kept) await client.query(`INSERT INTO task_keepers VALUES ($1, $2, $3) ON CONFLICT (tid) DO UPDATE SET kept = excluded.kept`, [i.tid, i.jobId, json(i.kept)]);
    else await client.query(`DELETE FROM task_keepers WHERE tid = $1`, [i.tid]);
  }
  for (const v of batch.vmStates) {
    if (v.state) await client.query(`INSERT INTO vm_states VALUES ($1, $2) ON CONFLICT (job_id) DO UPDATE SET state = excluded.state`, [v.jobId, json(v.state)]);
    else await client.query(`DELETE FROM vm_states WHERE job_id = $1`, [v.jobId]);
  }
  if (batch.hosts.length) {
    const h = columns(batch.hosts, (r) => [r.hostId, r.secretHash, r.userAgent, r.createdAt, r.lastSeenAt, r.done]);
    await client.query(
      `INSERT INTO hosts SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
       ON CONFLICT (host_id) DO UPDATE SET user_agent = excluded.user_agent, last_seen_at = excluded.last_seen_at, done = excluded.done`,
      h,
    );
  }
  if (batch.volunteers.length) {
    const v = columns(batch.volunteers, (r) => [r.volunteerId, r.allowance, r.returned, r.dropped, r.validated, r.invalid, r.streak, r.trusted ? 1 : 0, r.updatedAt]);
    await client.query(
      `INSERT INTO volunteers SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::int[], $9::bigint[])
       ON CONFLICT (volunteer_id) DO UPDATE SET allowance = excluded.allowance, returned = excluded.returned,
        dropped = excluded.dropped, validated = excluded.validated, invalid = excluded.invalid,
        streak = excluded.streak, trusted = excluded.trusted, updated_at = excluded.updated_at`,
      v,
    );
  }
}

/** Rows turned into one array per column: the parameters of an `unnest` statement. */
function columns<T>(rows: readonly T[], row: (r: T) => unknown[]): unknown[][] {
  const first = row(rows[0]!);
  const out = first.map((value) => [value]);
  for (let i = 1; i < rows.length; i++) {
    const values = row(rows[i]!);
    for (let c = 0; c < out.length; c++) out[c]!.push(values[c]);
  }
  return out;
}
