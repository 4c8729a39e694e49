import { defineConfig } from '@playwright/test';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './support/chromium.ts';

// One worker: each spec runs a coordinator and several tabs, which is all two cores can take.
export default defineConfig({
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
});
