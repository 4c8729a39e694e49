import { PostgresServer } from '@webpvm/local-servers';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../src/store/postgres-schema.ts';
import { PostgresStore } from '../src/store/postgres-store.ts';
import { emptyBatch } from '../src/store/store.ts';
import { job } from './support/stored-records.ts';

/* What only PostgreSQL has to do (store-contract.test.ts has the rest): several coordinators at once, and a server that goes away. */

let server: PostgresServer;
beforeAll(async () => {
  server = await PostgresServer.start({ durable: false });
}, 60_000);
afterAll(() => server.stop());

describe('PostgresStore', () => {
  it('lets coordinators started together on one database migrate it once, and each reads what another wrote', async () => {
    const url = server.createDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresStore.open(url)));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    await client.end();
    expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    await stores[0]!.commit({ ...emptyBatch(), jobs: [job('j1', 1)] });
    expect((await stores[3]!.getJob('j1'))?.id).toBe('j1');
    await Promise.all(stores.map((s) => s.close()));
  });

  it('says it cannot be used when its server is gone: E_STORE_UNAVAILABLE and a failing health, not a hang', async () => {
    const own = await PostgresServer.start({ durable: false });
    const store = await PostgresStore.open(own.createDatabase());
    await store.commit({ ...emptyBatch(), jobs: [job('j1', 1)] });
    expect(store.health()).toEqual({ ok: true });
    await own.stop();
    await expect(store.commit({ ...emptyBatch(), jobs: [job('j2', 2)] })).rejects.toMatchObject({ code: 'E_STORE_UNAVAILABLE' });
    await expect(store.getJob('j1')).rejects.toMatchObject({ code: 'E_STORE_UNAVAILABLE' });
    expect(store.health()).toMatchObject({ ok: false });
    await store.close();
  });

  it('refuses to start on a server it cannot reach, with E_STORE_UNAVAILABLE', async () => {
    const gone = await PostgresServer.start({ durable: false });
    const url = gone.createDatabase();
    await gone.stop();
    await expect(PostgresStore.open(url)).rejects.toMatchObject({ code: 'E_STORE_UNAVAILABLE' });
  });
});
