import type { JobStatus, TaskInfo } from '@webpvm/vm-protocol';
import { useState } from 'react';
import type { ApiClient } from './api-client.ts';
import { errorText } from './error-text.ts';
import { detailPollMs } from './job-refresh.ts';
import { usePoll } from './use-poll.ts';

/** Enough rows to follow a PVM job by eye; a bag of 100k tasks is better read from the API. */
const MAX_ROWS = 1000;

/** Every task of the job: where it runs, how far it is and how many messages it exchanged. */
export function TasksTable({ client, job }: { client: ApiClient; job: JobStatus }) {
  const [tasks, setTasks] = useState<TaskInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  usePoll(
    async () => {
      try {
        setTasks((await client.tasks(job.id)).tasks);
        setError(null);
      } catch (e) {
        setError(errorText(e));
      }
    },
    detailPollMs(job),
    true,
    job.id,
  );

  return (
    <>
      <h3>Tasks</h3>
      {error && <p className="error">{error}</p>}
      {tasks && (
        <>
          <table data-testid="tasks-table">
            <thead>
              <tr>
                <th>Task</th>
                <th>Parent</th>
                <th>State</th>
                <th>Attempt</th>
                <th>Host</th>
                <th>Progress</th>
                <th>Messages in</th>
                <th>Messages out</th>
              </tr>
            </thead>
            <tbody>
              {tasks.slice(0, MAX_ROWS).map((task) => (
                <tr key={task.tid} data-testid="task-row" data-tid={task.tid}>
                  <td>
                    <code>{task.tid}</code>
                  </td>
                  <td>{task.parent ? <code>{task.parent}</code> : '—'}</td>
                  <td>
                    <span className={`badge badge-${task.state}`}>{task.state}</span>
                  </td>
                  <td className="num">{task.attempt}</td>
                  <td>{task.hostId ? <code>{task.hostId}</code> : '—'}</td>
                  <td>
                    <progress value={task.progress} max={1}>
                      {Math.round(task.progress * 100)}%
                    </progress>
                  </td>
                  <td className="num">{task.messagesIn}</td>
                  <td className="num">{task.messagesOut}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {tasks.length > MAX_ROWS && (
            <p className="muted">
              Showing the first {MAX_ROWS} of {tasks.length} tasks.
            </p>
          )}
        </>
      )}
    </>
  );
}
