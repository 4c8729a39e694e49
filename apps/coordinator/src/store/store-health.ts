import type { StoreHealth } from './store.ts';

/**
 * Writes that failed and have not succeeded since, by lane. A lane whose writes are kept and
 * retried until they succeed (the write-behind's batches, the event log's) is failing while its
 * latest attempt failed, whatever else succeeds meanwhile: on a full file a small in-place update
 * may succeed while the batch that adds rows cannot. The writes nobody retries (a token, a program,
 * a deletion) and failed reads share one lane, cleared by the next of those writes that succeeds.
 */
export class FailingWrites {
  readonly #failing = new Map<string, { since: number; reason: string }>();

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
}
