import type { HostList } from '@webpvm/vm-protocol';

export function HostsPanel({ hosts, error }: { hosts: HostList | null; error: string | null }) {
  const connected = hosts?.hosts.filter((h) => h.connected) ?? [];
  const slots = connected.reduce((sum, h) => sum + h.slots, 0);
  const running = connected.reduce((sum, h) => sum + h.running, 0);
  // One row per volunteer (browser profile), however many of its tabs are connected.
  const byVolunteer = new Map<string, (typeof connected)[number][]>();
  for (const h of connected) byVolunteer.set(h.volunteerId ?? h.hostId, [...(byVolunteer.get(h.volunteerId ?? h.hostId) ?? []), h]);
  const volunteers = [...byVolunteer].map(([id, tabs]) => ({ ...tabs[0]!, id, tabs: tabs.length }));
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
      {volunteers.length > 0 && (
        <table data-testid="volunteers">
          <thead>
            <tr>
              <th>Volunteer</th>
              <th>Tabs</th>
              <th title="Adaptive replication: its results stand alone, with spot checks">Trusted</th>
              <th title="Replicated results that agreed with a quorum">Validated</th>
              <th title="Replicated results that did not">Invalid</th>
            </tr>
          </thead>
          <tbody>
            {volunteers.map((v) => (
              <tr key={v.id}>
                <td>{v.id}</td>
                <td>{v.tabs}</td>
                <td>{v.trusted ? 'yes' : 'no'}</td>
                <td>{v.validated}</td>
                <td className={v.invalid > 0 ? 'error' : undefined}>{v.invalid}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="muted">
        Open <a href="/">the volunteer page</a> in more tabs or on more machines to add hosts.
      </p>
    </section>
  );
}
