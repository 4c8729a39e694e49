import type { HostList } from '@webpvm/vm-protocol';

export function HostsPanel({ hosts, error }: { hosts: HostList | null; error: string | null }) {
  const connected = hosts?.hosts.filter((h) => h.connected) ?? [];
  const slots = connected.reduce((sum, h) => sum + h.slots, 0);
  const running = connected.reduce((sum, h) => sum + h.running, 0);
  return (
    <section className="card">
      <h2>Volunteers</h2>
      {error && <p className="error">{error}</p>}
      <dl className="stats">
        <div>
          <dt>Hosts connected</dt>
          <dd data-testid="hosts-count">{connected.length}</dd>
        </div>
        <div>
          <dt>Slots</dt>
          <dd>{slots}</dd>
        </div>
        <div>
          <dt>Tasks running</dt>
          <dd>{running}</dd>
        </div>
      </dl>
      <p className="muted">
        Open <a href="/">the volunteer page</a> in more tabs or on more machines to add hosts.
      </p>
    </section>
  );
}
