import type { JobStatus } from '@webpvm/vm-protocol';

interface JobsTableProps {
  jobs: JobStatus[];
  selectedId: string | null;
  onOpen(id: string): void;
  onCancel(id: string): void;
}

const cancellable = (job: JobStatus) => job.state === 'queued' || job.state === 'running';

export function JobsTable({ jobs, selectedId, onOpen, onCancel }: JobsTableProps) {
  if (jobs.length === 0) return <p className="muted">No jobs yet.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th>Name</th>
          <th>Id</th>
          <th>State</th>
          <th>Progress</th>
          <th>Tasks</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {jobs.map((job) => (
          <tr key={job.id} data-testid="job-row" data-job-id={job.id} className={job.id === selectedId ? 'selected' : undefined}>
            <td>{job.name}</td>
            <td>
              <code>{job.id}</code>
            </td>
            <td>
              <span className={`badge badge-${job.state}`} data-testid="job-state" title={job.error ? `${job.error.code}: ${job.error.message}` : undefined}>
                {job.state}
              </span>
            </td>
            <td>
              <progress data-testid="job-progress" value={job.progress} max={1}>
                {Math.round(job.progress * 100)}%
              </progress>
            </td>
            <td className="num">
              {job.tasks.done}/{job.tasks.total} done
              {job.tasks.running > 0 && `, ${job.tasks.running} running`}
              {job.tasks.failed > 0 && `, ${job.tasks.failed} failed`}
            </td>
            <td className="actions">
              <button data-testid="job-open" type="button" className="secondary" onClick={() => onOpen(job.id)}>
                Results
              </button>
              {cancellable(job) && (
                <button data-testid="job-cancel" type="button" className="secondary" onClick={() => onCancel(job.id)}>
                  Cancel
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
