import { test as base } from '@playwright/test';
import { Api } from './api.ts';
import { CoordinatorProcess } from './coordinator.ts';

/**
 * Every spec gets its own coordinator (free port, temporary data) and an admin API client. A spec
 * may set the coordinator's environment with `test.use({ coordinatorEnv })`.
 */
export const test = base.extend<{ coordinatorEnv: Record<string, string>; coordinator: CoordinatorProcess; api: Api }>({
  coordinatorEnv: [{}, { option: true }],
  coordinator: async ({ coordinatorEnv }, use, testInfo) => {
    const coordinator = await CoordinatorProcess.start(coordinatorEnv);
    await use(coordinator);
    if (testInfo.status !== testInfo.expectedStatus) await testInfo.attach('coordinator.log', { body: coordinator.logs });
    await coordinator.stop();
  },
  api: async ({ coordinator }, use) => {
    await use(new Api(coordinator.url));
  },
});

export { expect } from '@playwright/test';
