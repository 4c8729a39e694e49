import { useSyncExternalStore } from 'react';
import type { HostRuntime, HostSnapshot } from './host-runtime.ts';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function headline(s: HostSnapshot): string {
  switch (s.connection) {
    case 'connected':
      if (s.paused) return 'Connected — paused while you use this computer';
      return `Connected — running ${plural(s.running.length, 'task')} on ${plural(s.slots, 'slot')}`;
    case 'connecting':
      return 'Connecting to the coordinator…';
    case 'offline':
      return 'Reconnecting…';
  }
}

/** When a paused host computes again, in the words of its policy. */
function resumesWhen(s: HostSnapshot, idleMs: number): string {
  const idle = `${Math.round(idleMs / 100) / 10} s`;
  switch (s.policy) {
    case 'hidden':
      return 'It resumes when you switch to another tab or minimise this window.';
    case 'idle':
      return `It resumes when you leave this tab alone for ${idle}, or switch away from it.`;
    default:
      return `It resumes after ${idle}.`;
  }
}

export function HostView({ runtime, idleMs }: { runtime: HostRuntime; idleMs: number }) {
  const s = useSyncExternalStore(runtime.subscribe, runtime.current);
  return (
    <main className="page">
      <header className="page-header">
        <h1>webpvm volunteer</h1>
        <a href="/dashboard">Dashboard →</a>
      </header>
      <p className="intro">
        While this tab is open it lends your computer's spare processing power to research jobs. Tasks run in background
        workers with no network access; results go back to the coordinator that served this page. You can close the tab at
        any time — unfinished tasks are handed to another volunteer.
      </p>

      <section className="card">
        <p className="headline">
          <span className={`badge badge-${s.connection}`} data-testid="host-connection">
            {s.connection}
          </span>
          {headline(s)}
        </p>
        {s.paused && (
          <p className="paused" role="status" data-testid="host-paused">
            <strong>Paused — your tasks moved to other volunteers.</strong> {resumesWhen(s, idleMs)}
          </p>
        )}
        {s.connection === 'offline' && s.pendingResults > 0 && (
          <p className="muted">{plural(s.pendingResults, 'result')} kept safely in this browser until the coordinator is back.</p>
        )}
        <dl className="stats">
          <div>
            <dt>Running</dt>
            <dd data-testid="host-running-count">{s.running.length}</dd>
          </div>
          <div>
            <dt>Queued</dt>
            <dd>{s.queued}</dd>
          </div>
          <div>
            <dt>Done</dt>
            <dd data-testid="host-done-count">{s.done}</dd>
          </div>
          <div>
            <dt>Failed</dt>
            <dd>{s.failed}</dd>
          </div>
          <div>
            <dt>Slots</dt>
            <dd>{s.slots}</dd>
          </div>
          <div>
            <dt>Policy</dt>
            <dd>{s.policy}</dd>
          </div>
          <div>
            <dt>Messages sent</dt>
            <dd title="on this page / over data channels / through the coordinator">
              {s.messages.local} / {s.messages.channelOut} / {s.messages.relayOut}
            </dd>
          </div>
          <div>
            <dt>Data channels</dt>
            <dd>{s.messages.channelsOpen}</dd>
          </div>
        </dl>
        <p className="muted">
          Host id: <code data-testid="host-id">{s.hostId ?? ''}</code>
        </p>
      </section>

      <section className="card">
        <h2>Running tasks</h2>
        {s.running.length === 0 ? (
          <p className="muted">Nothing running right now.</p>
        ) : (
          <ul className="task-list">
            {s.running.map((t) => (
              <li key={`${t.tid}:${t.attempt}`}>
                <code>{t.tid}</code>
                <progress value={t.progress} max={1} />
                <span className="muted">{Math.round(t.progress * 100)}%</span>
              </li>
            ))}
          </ul>
        )}
      </section>
    </main>
  );
}
