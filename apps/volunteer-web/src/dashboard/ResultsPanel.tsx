import type { JobStatus } from '@webpvm/vm-protocol';
import { useEffect, useState } from 'react';
import type { ApiClient } from './api-client.ts';
import { saveBlob } from './download.ts';
import { errorText } from './error-text.ts';
import { MigrationsTable } from './MigrationsTable.tsx';
import { TasksTable } from './TasksTable.tsx';

/** Enough rows to check a job by eye; the download holds all of them. */
const MAX_ROWS = 1000;
const MAX_CHARS = 160;

function preview(value: unknown): string {
  if (value === null) return '—';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > MAX_CHARS ? `${text.slice(0, MAX_CHARS)}…` : text;
}

export function ResultsPanel({ client, job }: { client: ApiClient; job: JobStatus }) {
  const [results, setResults] = useState<unknown[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  // New results only appear when a task ends, so fetch again only then.
  const version = `${job.id}:${job.state}:${job.tasks.done}:${job.tasks.failed}`;

  useEffect(() => {
    let current = true;
    client
      .results(job.id)
      .then((r) => {
        if (!current) return;
        setResults(r.results);
        setError(null);
      })
      .catch((e: unknown) => {
        if (current) setError(errorText(e));
      });
    return () => {
      current = false;
    };
  }, [client, job.id, version]);

  const download = async () => {
    try {
      saveBlob(await client.resultsFile(job.id), `${job.name || 'job'}-${job.id}-results.json`);
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <section className="card">
      <div className="page-header">
        <h2>
          Results of {job.name} <code>{job.id}</code>
        </h2>
        <button data-testid="results-download" type="button" onClick={download}>
          Download JSON
        </button>
      </div>
      {error && <p className="error">{error}</p>}
      {results && (
        <>
          <table data-testid="results-table">
            <thead>
              <tr>
                <th>#</th>
                <th>Result</th>
              </tr>
            </thead>
            <tbody>
              {results.slice(0, MAX_ROWS).map((value, index) => (
                <tr key={index} data-testid="result-row">
                  <td className="num">{index}</td>
                  <td className="result">{preview(value)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {results.length > MAX_ROWS && (
            <p className="muted">
              Showing the first {MAX_ROWS} of {results.length} results; the download has all of them.
            </p>
          )}
        </>
      )}
      <TasksTable client={client} job={job} />
      <MigrationsTable client={client} job={job} />
    </section>
  );
}
