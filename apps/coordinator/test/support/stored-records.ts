import type { MigrationEvent } from '@webpvm/vm-protocol';
import { type StoredJob, emptyTally } from '../../src/store/store.ts';

/** Records the store tests write: a running bag job of two roots, and a migration event. */
export const job = (id: string, createdAt: number, owner = 'alice'): StoredJob => ({
  id,
  owner,
  name: `job ${id}`,
  options: { kind: 'bag', roots: 2, replicas: 1, quorum: 1, maxAttempts: 3, taskTimeoutMs: null, priority: 1, seed: 1 },
  programHash: 'abc',
  state: 'running',
  total: 2,
  open: false,
  tally: emptyTally(),
  createdAt,
  finishedAt: null,
  error: null,
  attempts: 0,
  migrations: 0,
});

export const migration = (id: number, jobId: string): MigrationEvent => ({
  id,
  type: 'migration',
  jobId,
  tid: `${jobId}.0`,
  reason: 'input',
  from: 'ha',
  to: 'hb',
  at: new Date(id * 1000).toISOString(),
  obtrusivenessMs: 3,
  latencyMs: 40,
  bytes: 1024,
  path: 'channel',
  frozen: true,
});
