import { defineConfig } from '@playwright/test';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './support/chromium.ts';

/** The specs that run again on PostgreSQL (DATABASE_URL): jobs end to end, and a coordinator killed and restarted on its data. */
const ON_POSTGRES = /(bag-job|coordinator-restart|coordinator-crash)\.spec\.ts$/;

// One worker: each spec runs a coordinator and several tabs, which is all two cores can take.
export default defineConfig<object, { store: 'sqlite' | 'postgres' }>({
  testDir: './tests',
  workers: 1,
  fullyParallel: false,
  timeout: 120_000,
  expect: { timeout: 30_000 },
  retries: 0,
  outputDir: '../test-results/e2e',
  use: {
    launchOptions: { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS },
    // A failed test keeps its trace, but with no screencast: recording one renders and encodes
    // every window's frames, and on a busy 2-core machine that starved the tabs (a shown tab took
    // up to 29 s to answer page.evaluate with it, under 1.6 s without).
    trace: { mode: 'retain-on-failure', screenshots: false, snapshots: false },
  },
  projects: [
    { name: 'sqlite' },
    { name: 'postgres', testMatch: ON_POSTGRES, use: { store: 'postgres' } },
  ],
});
