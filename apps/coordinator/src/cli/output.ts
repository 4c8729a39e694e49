import type { HostList, JobStatus, TokenList } from '@webpvm/vm-protocol';

/** Data for scripts goes to stdout; everything meant for a person goes to stderr. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ');
  return [line(headers), ...rows.map(line)].join('\n');
}

export function jobTable(jobs: JobStatus[]): string {
  return table(
    ['ID', 'NAME', 'STATE', 'DONE/TOTAL', 'PROGRESS'],
    jobs.map((job) => [job.id, job.name, job.state, `${job.tasks.done}/${job.tasks.total}`, percent(job.progress)]),
  );
}

export function jobLines(job: JobStatus): string {
  const { tasks } = job;
  const rows: [string, string][] = [
    ['id', job.id],
    ['name', job.name],
    ['state', job.state],
    ['tasks', `${tasks.done}/${tasks.total} done, ${tasks.running} running, ${tasks.pending} pending, ${tasks.failed} failed`],
    ['progress', percent(job.progress)],
    ['migrations', String(job.migrations)],
    ['attempts', String(job.attempts)],
    ['priority', String(job.priority)],
    ['created', job.createdAt],
    ['finished', job.finishedAt ?? '-'],
  ];
  if (job.error !== null) rows.push(['error', `${job.error.message} (${job.error.code})`]);
  return rows.map(([key, value]) => `${key.padEnd(10)}  ${value}`).join('\n');
}

export function tokenTable(tokens: TokenList['tokens']): string {
  return table(
    ['ID', 'NAME', 'SCOPE', 'OWNER', 'CREATED', 'EXPIRES', 'REVOKED'],
    tokens.map((t) => [t.id, shorten(t.name, 32), t.scope, t.owner === t.id ? 'itself' : t.owner, t.createdAt, t.expiresAt ?? 'never', t.revokedAt ?? '-']),
  );
}

export function hostTable(hosts: HostList['hosts'], now = Date.now()): string {
  return table(
    ['HOST', 'STATE', 'VOLUNTEER', 'TRUSTED', 'VALID', 'INVALID', 'SLOTS', 'RUNNING', 'DONE', 'LAST SEEN', 'BROWSER'],
    hosts.map((host) => [
      host.hostId,
      host.connected ? (host.draining ? 'draining' : 'connected') : 'offline',
      host.volunteerId ?? '-',
      host.trusted ? 'yes' : 'no',
      String(host.validated),
      String(host.invalid),
      String(host.slots),
      String(host.running),
      String(host.done),
      age(host.lastSeenAt, now),
      shorten(host.userAgent, 48),
    ]),
  );
}

function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`;
}

function age(iso: string, now: number): string {
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  if (!Number.isFinite(seconds)) return iso;
  if (seconds < 60) return `${Math.max(seconds, 0)}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

function shorten(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}
