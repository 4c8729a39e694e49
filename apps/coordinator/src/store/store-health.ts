import { WebpvmError } from '@webpvm/vm-protocol';
import type { StoreHealth } from './store.ts';

/*
 * What both stores do when they fail: writes in lanes, a lane failing from a write that failed
 * for the store's sake until one succeeds, the error a request gets, and when to probe.
 */

/**
 * Lanes of writes: the write-behind's batches and the event log's are each retried by their
 * queue until stored; everything else that writes, and every read, shares one.
 */
export const LANES = { commits: 'commits', events: 'events', oneOff: 'one-off' } as const;

/** Least time between two probe writes while a one-off write's failure is unresolved. */
const PROBE_MS = 1_000;

/**
 * Writes that failed and have not succeeded since, by lane. A lane whose writes are kept and
 * retried until they succeed (the write-behind's batches, the event log's) is failing while its
 * latest attempt failed, whatever else succeeds meanwhile: on a full file a small in-place update
 * may succeed while the batch that adds rows cannot. The writes nobody retries (a token, a program,
 * a deletion) and failed reads share one lane, cleared by the next of those writes that succeeds.
 */
export class FailingWrites {
  readonly #failing = new Map<string, { since: number; reason: string }>();
  #probedAt = -Infinity;

  constructor(private readonly now: () => number = Date.now) {}

  failed(lane: string, reason: string): void {
    this.#failing.set(lane, { since: this.#failing.get(lane)?.since ?? this.now(), reason });
  }

  succeeded(lane: string): void {
    this.#failing.delete(lane);
  }

  failing(lane: string): boolean {
    return this.#failing.has(lane);
  }

  health(): StoreHealth {
    let health: StoreHealth = { ok: true };
    for (const { since, reason } of this.#failing.values()) {
      if (health.ok || since < health.since) health = { ok: false, since, reason };
    }
    return health;
  }

  /**
   * What to throw for `error` of a write or read of `lane`: E_STORE_UNAVAILABLE (HTTP 503), the
   * lane marked failing, when `reason` (the store's reading of the error) says the store cannot
   * be used; else the error itself, a request's fault or a bug's.
   */
  thrown(lane: string, error: unknown, reason: string | null): unknown {
    if (reason === null) return error;
    this.failed(lane, reason);
    return new WebpvmError('E_STORE_UNAVAILABLE', `the store cannot be used: ${reason}`);
  }

  /**
   * Kept writes are retried by their queues, and their next attempt says whether they can be
   * stored; a one-off write that failed is not retried, so a coordinator nobody writes to would
   * never learn that the store takes writes again: it probes instead, at most once per PROBE_MS.
   */
  probeDue(): boolean {
    const now = performance.now();
    if (!this.failing(LANES.oneOff) || now - this.#probedAt < PROBE_MS) return false;
    this.#probedAt = now;
    return true;
  }
}
