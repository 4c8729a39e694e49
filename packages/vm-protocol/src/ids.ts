import { z } from 'zod';
import { LIMITS } from './limits.ts';

/**
 * A task id is `<jobId>.<n>`: readable, location independent, never reused. The job
 * prefix lets any layer check that a task only addresses tids of its own job.
 */
export const JobId = z.string().regex(/^[a-z0-9]{4,32}$/, 'job id: 4-32 lowercase letters or digits');
export const TID_PATTERN = /^[a-z0-9]{4,32}\.\d{1,9}$/;
export const Tid = z.string().max(LIMITS.idChars).regex(TID_PATTERN, 'tid: <jobId>.<n>');
export type JobId = z.infer<typeof JobId>;
export type Tid = z.infer<typeof Tid>;

export function makeTid(jobId: string, index: number): Tid {
  return `${jobId}.${index}`;
}

export function parseTid(tid: Tid): { jobId: JobId; index: number } {
  const dot = tid.lastIndexOf('.');
  return { jobId: tid.slice(0, dot), index: Number(tid.slice(dot + 1)) };
}
