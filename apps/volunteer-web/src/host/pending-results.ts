import { LIMITS, type HostMessage, type TaskOutcome, type TaskRef } from '@webpvm/vm-protocol';
import type { KeyValueStore } from './kv-store.ts';

const PREFIX = 'result:';
/** Outcomes that end within this window share one `results` frame. */
const COALESCE_MS = 10;
/** Room left in a frame for the envelope around the items. */
const ENVELOPE_CHARS = 1024;

export const resultKey = (ref: TaskRef): string => `${PREFIX}${ref.tid}:${ref.attempt}`;

/** Splits outcomes into `results` frames that respect the item and frame limits. */
export function batchOutcomes(
  outcomes: TaskOutcome[],
  maxItems: number = LIMITS.itemsPerBatch,
  maxChars: number = LIMITS.frameBytes - ENVELOPE_CHARS,
): TaskOutcome[][] {
  const batches: TaskOutcome[][] = [];
  let batch: TaskOutcome[] = [];
  let chars = 0;
  for (const outcome of outcomes) {
    const size = JSON.stringify(outcome).length + 1;
    if (batch.length > 0 && (batch.length >= maxItems || chars + size > maxChars)) {
      batches.push(batch);
      batch = [];
      chars = 0;
    }
    batch.push(outcome);
    chars += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/**
 * Finished outcomes the coordinator has not acknowledged yet. Each is written to IndexedDB
 * before it is sent and deleted only on `ack`, so neither an outage nor a reload loses one.
 */
export class PendingResults {
  #store: KeyValueStore;
  #send: (message: HostMessage) => boolean;
  #keys = new Set<string>();
  #outbox: TaskOutcome[] = [];
  /** Outcomes being written to the store: not sent yet. */
  #storing: TaskOutcome[] = [];
  #flushTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(store: KeyValueStore, send: (message: HostMessage) => boolean) {
    this.#store = store;
    this.#send = send;
  }

  get count(): number {
    return this.#keys.size;
  }

  /** Tids with an outcome not yet acknowledged, including those left by an earlier visit. */
  tids(): Set<string> {
    return new Set([...this.#keys].map((key) => key.slice(PREFIX.length, key.lastIndexOf(':'))));
  }

  async load(): Promise<void> {
    for (const key of await this.#store.keys()) if (key.startsWith(PREFIX)) this.#keys.add(key);
  }

  /** Queues an outcome; outcomes that end within COALESCE_MS are stored in one transaction, then sent in one frame. */
  add(outcome: TaskOutcome): void {
    this.#keys.add(resultKey(outcome));
    this.#outbox.push(outcome);
    this.#flushTimer ??= setTimeout(() => void this.#flush(), COALESCE_MS);
  }

  /**
   * The page is going away: what is not sent yet goes now, before it is stored (the store write
   * may never finish). The usual send after storing may repeat some; the coordinator ignores repeats.
   */
  sendNow(): void {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    const unsent = [...this.#storing, ...this.#outbox];
    if (this.#outbox.length) void this.#flush();
    this.#sendAll(unsent);
  }

  async resendAll(): Promise<void> {
    const stored = await Promise.all([...this.#keys].map((key) => this.#store.get<TaskOutcome>(key)));
    this.#sendAll(stored.filter((outcome): outcome is TaskOutcome => outcome !== undefined));
  }

  async ack(refs: TaskRef[]): Promise<void> {
    const keys = refs.map(resultKey);
    for (const key of keys) this.#keys.delete(key);
    await Promise.all(keys.map((key) => this.#store.del(key)));
  }

  async #flush(): Promise<void> {
    const outcomes = this.#outbox.splice(0);
    this.#storing.push(...outcomes);
    try {
      await this.#store.setMany(outcomes.map((outcome) => [resultKey(outcome), outcome]));
    } catch (error) {
      console.warn('webpvm: could not store results; sending them unstored', error);
    }
    this.#storing = this.#storing.filter((outcome) => !outcomes.includes(outcome));
    this.#flushTimer = null;
    // Unsent outcomes stay in the store and go out again after the next welcome.
    this.#sendAll(outcomes);
    if (this.#outbox.length) this.#flushTimer = setTimeout(() => void this.#flush(), COALESCE_MS);
  }

  #sendAll(outcomes: TaskOutcome[]): void {
    for (const items of batchOutcomes(outcomes)) {
      if (!this.#send({ type: 'results', items })) return;
    }
  }
}
