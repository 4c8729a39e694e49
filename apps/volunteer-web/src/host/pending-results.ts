import { LIMITS, type HostMessage, type TaskOutcome, type TaskRef } from '@webpvm/vm-protocol';
import { type Clock, type Timer, systemClock } from './clock.ts';
import type { KeyValueStore } from './kv-store.ts';

/** One record holds one batch of outcomes, as it was written. */
const BATCH_PREFIX = 'results:';
/** Before batches, one record held one outcome; a page reopened after an upgrade may still hold some. */
const SINGLE_PREFIX = 'result:';
/** Room left in a frame for the envelope around the items. */
const ENVELOPE_CHARS = 1024;
/** Acknowledged records go with the next write; with none coming, at most this much later. */
const DELETE_WAIT_MS = 1000;

const refKey = (ref: TaskRef): string => `${ref.tid}:${ref.attempt}`;

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
 *
 * Writes are group commits with no timer (a hidden page's timers run once a second): the
 * outcomes of one turn of the event loop start a write, and those that end while it is under
 * way go together in the next — the busier the page, the larger the batches. A batch is one
 * record, deleted once all its outcomes are acknowledged, in the transaction of the next write:
 * IndexedDB's cost is per transaction (kv-store.ts), not per byte, for outcomes this small.
 */
export class PendingResults {
  #store: KeyValueStore;
  #send: (message: HostMessage) => boolean;
  /** Every outcome not acknowledged yet, stored or not, by `tid:attempt`. */
  #unacked = new Map<string, TaskOutcome>();
  /** Which record holds each stored outcome, and what of each record is not acknowledged yet. */
  #recordOf = new Map<string, string>();
  #records = new Map<string, Set<string>>();
  #outbox: TaskOutcome[] = [];
  /** Outcomes being written to the store: not sent yet. */
  #storing: TaskOutcome[] = [];
  #writing = false;
  #flushQueued = false;
  /** Records whose outcomes are all acknowledged, to delete with the next write. */
  #acked: string[] = [];
  #deleteTimer: Timer | null = null;
  #clock: Clock;
  /** Record keys of this page's visit: a fresh prefix, then a counter. */
  #visit = Date.now().toString(36);
  #written = 0;

  constructor(store: KeyValueStore, send: (message: HostMessage) => boolean, clock: Clock = systemClock) {
    this.#store = store;
    this.#send = send;
    this.#clock = clock;
  }

  get count(): number {
    return this.#unacked.size;
  }

  /** Tids with an outcome not yet acknowledged, including those left by an earlier visit. */
  tids(): Set<string> {
    return new Set([...this.#unacked.values()].map((outcome) => outcome.tid));
  }

  /** Reads what an earlier visit of this page left unacknowledged. */
  async load(): Promise<void> {
    const keys = (await this.#store.keys()).filter((key) => key.startsWith(BATCH_PREFIX) || key.startsWith(SINGLE_PREFIX));
    const records = await Promise.all(keys.map((key) => this.#store.get<TaskOutcome | TaskOutcome[]>(key)));
    keys.forEach((key, i) => {
      const stored = records[i];
      if (stored !== undefined) this.#hold(key, Array.isArray(stored) ? stored : [stored]);
    });
  }

  /** Queues an outcome: it is stored with the others of its batch in one record, then sent in one frame. */
  add(outcome: TaskOutcome): void {
    this.#unacked.set(refKey(outcome), outcome);
    this.#outbox.push(outcome);
    if (this.#writing || this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => void this.#flush());
  }

  /**
   * The page is going away: what is not sent yet goes now, before it is stored (the store write
   * may never finish). The usual send after storing may repeat some; the coordinator ignores repeats.
   */
  sendNow(): void {
    const unsent = [...this.#storing, ...this.#outbox];
    void this.#flush();
    this.#sendAll(unsent);
  }

  /** After a reconnect: every outcome not acknowledged goes again (the coordinator ignores repeats). */
  resendAll(): void {
    const unsent = new Set([...this.#outbox, ...this.#storing]);
    this.#sendAll([...this.#unacked.values()].filter((outcome) => !unsent.has(outcome)));
  }

  /** These outcomes are stored on the coordinator: their records go (with the next write, or soon). */
  ack(refs: TaskRef[]): void {
    for (const ref of refs) {
      const key = refKey(ref);
      this.#unacked.delete(key);
      const record = this.#recordOf.get(key);
      if (record === undefined) continue;
      this.#recordOf.delete(key);
      const rest = this.#records.get(record)!;
      rest.delete(key);
      if (rest.size === 0) {
        this.#records.delete(record);
        this.#acked.push(record);
      }
    }
    if (this.#acked.length) this.#deleteTimer ??= this.#clock.setTimeout(() => void this.#deleteAcked(), DELETE_WAIT_MS);
  }

  stop(): void {
    this.#clock.clear(this.#deleteTimer);
    this.#deleteTimer = null;
  }

  async #deleteAcked(): Promise<void> {
    this.#deleteTimer = null;
    if (this.#writing || this.#flushQueued || !this.#acked.length) return;
    const records = this.#acked.splice(0);
    try {
      await this.#store.write([], records);
    } catch (error) {
      // They go again with the next write: a record left behind would be sent again on the next visit.
      this.#acked.push(...records);
      console.warn('webpvm: could not forget acknowledged results', error);
    }
  }

  async #flush(): Promise<void> {
    this.#flushQueued = false;
    if (this.#writing || !this.#outbox.length) return;
    this.#writing = true;
    const outcomes = this.#outbox.splice(0);
    this.#storing = outcomes;
    const record = `${BATCH_PREFIX}${this.#visit}:${this.#written++}`;
    const acked = this.#acked.splice(0);
    try {
      await this.#store.write([[record, outcomes]], acked);
      // What was acknowledged while it was written (sent by sendNow) needs no keeping.
      this.#hold(record, outcomes.filter((outcome) => this.#unacked.has(refKey(outcome))));
      if (!this.#records.has(record)) this.#acked.push(record);
    } catch (error) {
      console.warn('webpvm: could not store results; sending them unstored', error);
      this.#acked.push(...acked);
    }
    this.#storing = [];
    this.#writing = false;
    // Unsent outcomes stay in the store and go out again after the next welcome.
    this.#sendAll(outcomes);
    if (this.#outbox.length) void this.#flush();
    else if (this.#acked.length) this.#deleteTimer ??= this.#clock.setTimeout(() => void this.#deleteAcked(), DELETE_WAIT_MS);
  }

  /** Outcomes stored in `record`, to be deleted with it once all are acknowledged. */
  #hold(record: string, outcomes: TaskOutcome[]): void {
    if (!outcomes.length) return;
    const keys = new Set<string>();
    for (const outcome of outcomes) {
      const key = refKey(outcome);
      this.#unacked.set(key, outcome);
      this.#recordOf.set(key, record);
      keys.add(key);
    }
    this.#records.set(record, keys);
  }

  #sendAll(outcomes: TaskOutcome[]): void {
    for (const items of batchOutcomes(outcomes)) {
      if (!this.#send({ type: 'results', items })) return;
    }
  }
}
