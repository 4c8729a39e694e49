import type { TaskAssignment } from '@webpvm/vm-protocol';

export const assignment = (jobId: string, n: number, extra: Partial<TaskAssignment> = {}): TaskAssignment => ({
  tid: `${jobId}.${n}`,
  attempt: 1,
  jobId,
  parent: null,
  name: null,
  programUrl: `/programs/${jobId}.js`,
  input: n,
  resume: null,
  seed: n,
  timeoutMs: null,
  ...extra,
});
