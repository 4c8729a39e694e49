import type { JobStatus, MigrationEvent } from '@webpvm/vm-protocol';
import { useState } from 'react';
import type { ApiClient } from './api-client.ts';
import { errorText } from './error-text.ts';
import { detailPollMs } from './job-refresh.ts';
import { usePoll } from './use-poll.ts';

/** The latest ones matter most when a job moves a lot; the API holds the rest. */
const MAX_ROWS = 1000;

const ms = (value: number) => value.toFixed(value < 10 ? 1 : 0);

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * Every move of the job's tasks, newest last: why it moved, where to, how soon its old host had
 * the CPU back (obtrusiveness) and how soon it ran again (latency).
 */
export function MigrationsTable({ client, job }: { client: ApiClient; job: JobStatus }) {
  const [migrations, setMigrations] = useState<MigrationEvent[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  usePoll(
    async () => {
      try {
        setMigrations((await client.migrations(job.id)).migrations);
        setError(null);
      } catch (e) {
        setError(errorText(e));
      }
    },
    detailPollMs(job),
    true,
    // the job's count goes up with each migration: fetch at once rather than at the next poll
    `${job.id}:${job.migrations}`,
  );

  return (
    <>
      <h3>Migrations</h3>
      {error && <p className="error">{error}</p>}
      {migrations?.length === 0 && <p className="muted">No task of this job has moved.</p>}
      {migrations && migrations.length > 0 && (
        <>
          <table data-testid="migrations-table">
            <thead>
              <tr>
                <th>Time</th>
                <th>Task</th>
                <th>Reason</th>
                <th>From → to</th>
                <th>Obtrusiveness (ms)</th>
                <th>Latency (ms)</th>
                <th>Image</th>
                <th>Path</th>
                <th>Stopped</th>
              </tr>
            </thead>
            <tbody>
              {migrations.slice(-MAX_ROWS).map((m) => (
                <tr key={m.id} data-testid="migration-row" data-tid={m.tid}>
                  <td title={m.at}>{new Date(m.at).toLocaleTimeString()}</td>
                  <td>
                    <code>{m.tid}</code>
                  </td>
                  <td>{m.reason}</td>
                  <td>
                    <code>{m.from}</code> → {m.to ? <code>{m.to}</code> : '—'}
                  </td>
                  <td className="num">{ms(m.obtrusivenessMs)}</td>
                  <td className="num">{m.latencyMs === null ? '—' : ms(m.latencyMs)}</td>
                  <td className="num">{size(m.bytes)}</td>
                  <td>{m.path}</td>
                  <td title={m.frozen ? 'stopped at a safe point' : 'terminated; replayed from its last checkpoint'}>
                    {m.frozen ? 'frozen' : 'replayed'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {migrations.length > MAX_ROWS && (
            <p className="muted">
              Showing the last {MAX_ROWS} of {migrations.length} migrations.
            </p>
          )}
        </>
      )}
    </>
  );
}
