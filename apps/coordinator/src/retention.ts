import type { Logger } from 'pino';
import type { Store } from './store/store.ts';

/** Rows deleted per transaction: a job of millions of tasks goes in many short ones. */
const ROWS_PER_STEP = 10_000;
const DAY_MS = 24 * 3600 * 1000;
/** How often a coordinator with WEBPVM_RETENTION_DAYS looks for jobs past it. */
const EVERY_MS = 3600 * 1000;

/**
 * Finished jobs' rows — the job, its tasks and results, its events, and programs no job uses any
 * more — and the records of volunteers not heard of since are deleted once they are older than
 * the retention (`WEBPVM_RETENTION_DAYS`, or `webpvm gc --older-than <days>`). A job still
 * running is never touched. Between steps the event loop runs on, so hosts and the API are not
 * held up by a large job going.
 */
export class Retention {
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<{ jobs: number; rows: number }> | null = null;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Deletes what finished more than `days` ago; one collection at a time. */
  collect(days: number): Promise<{ jobs: number; rows: number }> {
    this.#running ??= this.#collect(this.now() - days * DAY_MS).finally(() => (this.#running = null));
    return this.#running;
  }

  /** Collects now and then hourly, past `days`. */
  keep(days: number): void {
    const run = () =>
      void this.collect(days)
        .then(({ jobs }) => jobs && this.log.info({ jobs, days }, 'finished jobs past their retention deleted'))
        .catch((err: unknown) => this.log.error({ err }, 'retention failed'));
    run();
    this.#timer = setInterval(run, EVERY_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  async #collect(before: number): Promise<{ jobs: number; rows: number }> {
    const total = { jobs: 0, rows: 0 };
    let forgotten: number;
    do {
      forgotten = await this.store.forgetVolunteers(before, ROWS_PER_STEP);
      total.rows += forgotten;
      await new Promise((resolve) => setImmediate(resolve));
    } while (forgotten === ROWS_PER_STEP);
    for (;;) {
      const step = await this.store.forgetFinished(before, ROWS_PER_STEP);
      if (step.rows === 0) return total;
      total.jobs += step.jobs;
      total.rows += step.rows;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
