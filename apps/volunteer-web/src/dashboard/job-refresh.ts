import type { JobStatus } from '@webpvm/vm-protocol';

const RUNNING_POLL_MS = 1000;
/** A finished job's details no longer change much: look again rarely. */
const FINISHED_POLL_MS = 60_000;
const FINISHED = new Set<JobStatus['state']>(['done', 'failed', 'cancelled']);

/** How often the open job's details (tasks, migrations) are fetched again. */
export const detailPollMs = (job: JobStatus): number => (FINISHED.has(job.state) ? FINISHED_POLL_MS : RUNNING_POLL_MS);
