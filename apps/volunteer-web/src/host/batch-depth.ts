import { MAX_HANDED } from '@webpvm/vm-protocol';

/**
 * A worker is handed about this much of a job's work at once: one task when its tasks take
 * longer, up to MAX_HANDED when they take a fraction of a millisecond. A long task is never held
 * up behind another, and each batch — its outcomes' IndexedDB transaction, result frame and
 * acknowledgement — costs the page, the browser and the coordinator ~2 ms of CPU in all: at
 * this size, a few per cent of the work at most (bench:throughput's CPU-bound rows).
 */
const HANDED_MS = 500;
/** How much each finished task moves a job's mean duration. */
const DURATION_WEIGHT = 0.2;

/** How long each job's tasks take on this host, and so how many of them a worker is handed at once. */
export class BatchDepth {
  #durations = new Map<string, number>();

  /** How many tasks of the job one worker may be handed: about HANDED_MS of their work, one until it is known. */
  of(jobId: string): number {
    const ms = this.#durations.get(jobId);
    if (ms === undefined) return 1;
    return Math.max(1, Math.min(MAX_HANDED, Math.floor(HANDED_MS / Math.max(ms, 0.01))));
  }

  /** `count` of the job's tasks ended together `elapsedMs` after the first of them started. */
  measured(jobId: string, elapsedMs: number, count: number): void {
    const took = elapsedMs / count;
    const mean = this.#durations.get(jobId);
    this.#durations.set(jobId, mean === undefined ? took : mean + DURATION_WEIGHT * (took - mean));
  }
}
