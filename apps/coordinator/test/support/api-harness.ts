import type { MigrationEvent } from '@webpvm/vm-protocol';
import pino from 'pino';
import { TokenAuth } from '../../src/auth.ts';
import { EventLog } from '../../src/event-log.ts';
import { buildApi } from '../../src/http-api.ts';
import { createMetrics } from '../../src/metrics.ts';
import { ProgramRegistry, programUrl } from '../../src/program-registry.ts';
import { Retention } from '../../src/retention.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';

export const ADMIN_TOKEN = 'wpvm_test-admin-token';

/** The HTTP API over an in-memory store (or `store`) and a scheduler with no hosts, as the coordinator wires it. */
export async function apiHarness(webRoot = '/nonexistent', store = new SqliteStore(':memory:')) {
  const log = pino({ level: 'silent' });
  const auth = new TokenAuth(store);
  await auth.bootstrap(ADMIN_TOKEN);
  const ADMIN = await auth.authenticate(`Bearer ${ADMIN_TOKEN}`);
  const events = await EventLog.open(store, log);
  const scheduler = new Scheduler({ store, log, migrations: events, checkpointIntervalMs: 0, reconnectGraceMs: 60_000, programUrl });
  const programs = new ProgramRegistry(store);
  const app = buildApi({ scheduler, store, events, auth, programs, metrics: createMetrics(), log, webRoot, connectedHosts: () => 0, retention: new Retention(store, log), tls: null, trustProxy: false });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  return {
    app,
    store,
    events,
    scheduler,
    programs,
    bearer,
    /** A researcher's (submit) token, made by the admin. */
    token: async (name: string, scope: 'read' | 'submit' | 'admin' = 'submit') => (await auth.create(ADMIN, { name, scope, expiresInDays: null })).token,
    /** A bag job of `inputs.length` tasks, owned by `token`'s holder. */
    async submit(token: string, inputs: unknown[] = [1]): Promise<string> {
      const res = await app.inject({
        method: 'POST',
        url: '/api/jobs',
        headers: bearer(token),
        payload: { program: 'export default (ctx, x) => x', inputs },
      });
      if (res.statusCode !== 201) throw new Error(`submit failed: ${res.body}`);
      return res.json<{ id: string }>().id;
    },
    async close() {
      await events.close();
      // After an aborted fetch, undici may keep a spare connection that never sends a request: the
      // server would wait for its keep-alive (4 s) to end. The coordinator destroys such sockets after a grace.
      app.server.closeAllConnections();
      await app.close();
      await store.close();
    },
  };
}

export const migrationOf = (jobId: string, n = 0): Omit<MigrationEvent, 'id'> => ({
  type: 'migration',
  jobId,
  tid: `${jobId}.${n}`,
  reason: 'input',
  from: 'ha',
  to: 'hb',
  at: '2026-01-01T00:00:00.000Z',
  obtrusivenessMs: 4,
  latencyMs: 55,
  bytes: 2048,
  path: 'channel',
  frozen: true,
});
