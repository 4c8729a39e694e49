import type { TaskAssignment } from '@webpvm/vm-protocol';

export const assignment = (jobId: string, n: number, extra: Partial<TaskAssignment> = {}): TaskAssignment => ({
  tid: `${jobId}.${n}`,
  attempt: 1,
  jobId,
  programUrl: `/programs/${jobId}.js`,
  input: n,
  resume: null,
  seed: n,
  timeoutMs: null,
  ...extra,
});
