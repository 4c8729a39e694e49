import { test as base } from '@playwright/test';
import { PostgresServer } from '@webpvm/local-servers';
import { Api } from './api.ts';
import { CoordinatorProcess } from './coordinator.ts';

/**
 * Every spec gets its own coordinator (free port, temporary data) and an admin API client. A spec
 * may set the coordinator's environment with `test.use({ coordinatorEnv })`. A project whose
 * `store` is `postgres` gives each coordinator a fresh database on one real PostgreSQL server per
 * worker (Debian's package, started on first use) instead of its SQLite file.
 */
export const test = base.extend<
  { coordinatorEnv: Record<string, string>; coordinator: CoordinatorProcess; api: Api },
  { store: 'sqlite' | 'postgres'; postgres: PostgresServer | null }
>({
  store: ['sqlite', { option: true, scope: 'worker' }],
  postgres: [
    async ({ store }, use) => {
      const server = store === 'postgres' ? await PostgresServer.start() : null;
      await use(server);
      await server?.stop();
    },
    { scope: 'worker' },
  ],
  coordinatorEnv: [{}, { option: true }],
  coordinator: async ({ coordinatorEnv, postgres }, use, testInfo) => {
    const env = postgres ? { DATABASE_URL: postgres.createDatabase(), ...coordinatorEnv } : coordinatorEnv;
    const coordinator = await CoordinatorProcess.start(env);
    // the project's point: the coordinator took the database, not its SQLite default
    const { store } = (await (await fetch(`${coordinator.url}/healthz`)).json()) as { store: string };
    if (store !== (postgres ? 'postgres' : 'sqlite')) throw new Error(`the coordinator runs on ${store}, not on the project's ${postgres ? 'postgres' : 'sqlite'}`);
    await use(coordinator);
    if (testInfo.status !== testInfo.expectedStatus) await testInfo.attach('coordinator.log', { body: coordinator.logs });
    await coordinator.stop();
  },
  api: async ({ coordinator }, use) => {
    await use(new Api(coordinator.url));
  },
});

export { expect } from '@playwright/test';
