import { WebpvmError } from '@webpvm/vm-protocol';
import type { Principal } from './auth.ts';

/** What an owner holds now: its unfinished jobs, and the tasks in them. */
export interface Holdings {
  jobs: number;
  tasks: number;
}

/**
 * Refuses a request that would take its token's owner past a quota (api.ts TokenQuotas): `bytes`
 * in one request, unfinished `jobs` at once, `tasks` in them. Tasks `running` at once are held
 * back by leasing instead (each job keeps its owner's quota: JobOptions.ownerRunning).
 */
export function checkQuotas(p: Principal, held: Holdings, adding: { jobs: number; tasks: number; bytes: number }): void {
  const { quotas } = p;
  if (quotas.bytes !== undefined && adding.bytes > quotas.bytes) {
    throw new WebpvmError('E_TOO_LARGE', `this token sends at most ${quotas.bytes} bytes a request; this one has ${adding.bytes}`);
  }
  if (quotas.jobs !== undefined && held.jobs + adding.jobs > quotas.jobs) {
    throw new WebpvmError('E_RATE_LIMITED', `this token's quota is ${quotas.jobs} unfinished jobs at once, and it has ${held.jobs}: wait for one to end`);
  }
  if (quotas.tasks !== undefined && held.tasks + adding.tasks > quotas.tasks) {
    throw new WebpvmError('E_RATE_LIMITED', `this token's quota is ${quotas.tasks} tasks in its unfinished jobs; it has ${held.tasks} and asks for ${adding.tasks} more`);
  }
}
