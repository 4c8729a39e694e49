import { readSealed } from '@webpvm/vm-protocol/envelope';

/**
 * A receiver's share of the log past which it is asked for a checkpoint (`log-full`): what its
 * checkpoint covers leaves the log then.
 */
export const LOG_SHARE_BYTES = 16 * 1024 * 1024;
/**
 * The most a task's log holds in all. Past it the oldest messages of the largest share go: a
 * receiver that never checkpoints cannot make its senders keep everything they ever sent it. Such
 * a receiver, crashed, can no longer be restarted exactly; the coordinator says so instead of
 * restarting it wrong (`dropped`).
 */
export const LOG_MAX_BYTES = 128 * 1024 * 1024;

interface Entry {
  seq: number;
  bytes: Uint8Array<ArrayBuffer>;
}

/**
 * One task's sender log (MPICH-V's sender-based message logging): every message it sent, kept in
 * its worker until the receiver's checkpoint kept off the receiver's tab covers it. A receiver
 * whose tab dies restarts from that checkpoint, and its senders send it again what follows. The
 * log rides in the task's own checkpoints too, for a receiver that dies together with it.
 */
export class SenderLog {
  readonly #entries = new Map<string, Entry[]>();
  readonly #bytes = new Map<string, number>();
  /** Receivers asked for a checkpoint whose log has not shrunk since. */
  readonly #asked = new Set<string>();
  #total = 0;

  /** `full` hears of a receiver whose share passed LOG_SHARE_BYTES; `dropped`, of one whose oldest messages left the log. */
  constructor(
    private readonly full: (to: string) => void,
    private readonly dropped: (to: string) => void,
  ) {}

  get bytes(): number {
    return this.#total;
  }

  /** A message sent to `to`; `bytes` is kept as it is, never written to again by the sender. */
  add(to: string, seq: number, bytes: Uint8Array<ArrayBuffer>): void {
    let entries = this.#entries.get(to);
    if (!entries) {
      entries = [];
      this.#entries.set(to, entries);
    }
    entries.push({ seq, bytes });
    const share = (this.#bytes.get(to) ?? 0) + bytes.byteLength;
    this.#bytes.set(to, share);
    this.#total += bytes.byteLength;
    if (share > LOG_SHARE_BYTES && !this.#asked.has(to)) {
      this.#asked.add(to);
      this.full(to);
    }
    if (this.#total > LOG_MAX_BYTES) this.#dropOldest();
  }

  /** The checkpoint of `to` kept off its tab has everything up to `seq`. */
  covered(to: string, seq: number): void {
    const entries = this.#entries.get(to);
    if (!entries) return;
    let done = 0;
    let freed = 0;
    while (done < entries.length && entries[done]!.seq <= seq) freed += entries[done++]!.bytes.byteLength;
    if (done === 0) return;
    this.#forget(to, entries, done, freed);
  }

  /** What the log holds for `to` past seq `after`, in seq order. */
  for(to: string, after = 0): Uint8Array<ArrayBuffer>[] {
    return (this.#entries.get(to) ?? []).filter((e) => e.seq > after).map((e) => e.bytes);
  }

  /**
   * Everything the log holds, receiver by receiver in seq order (what a checkpoint keeps), but
   * what `after` gives for a receiver and before.
   */
  all(after: ReadonlyMap<string, number> = new Map()): Uint8Array<ArrayBuffer>[] {
    return [...this.#entries.keys()].flatMap((to) => this.for(to, after.get(to)));
  }

  /** The log a checkpoint kept, as the task resumes from it; an envelope that does not read as a message is skipped. */
  restore(envelopes: readonly Uint8Array[]): void {
    for (const envelope of envelopes) {
      const read = readSealed(envelope);
      if (read.ok) this.add(read.message.to, read.message.seq, envelope.slice());
    }
  }

  /**
   * Lets go of the oldest messages of the largest shares until the log is an eighth under its
   * limit: a log of millions of small messages drops them a batch at a time, not one per send.
   */
  #dropOldest(): void {
    while (this.#total > LOG_MAX_BYTES - LOG_MAX_BYTES / 8) {
      let largest: string | null = null;
      for (const [to, bytes] of this.#bytes) if (largest === null || bytes > this.#bytes.get(largest)!) largest = to;
      if (largest === null) return;
      const entries = this.#entries.get(largest)!;
      let count = 0;
      let freed = 0;
      while (count < entries.length && this.#total - freed > LOG_MAX_BYTES - LOG_MAX_BYTES / 8) freed += entries[count++]!.bytes.byteLength;
      this.#forget(largest, entries, count, freed);
      this.dropped(largest);
    }
  }

  #forget(to: string, entries: Entry[], count: number, freed: number): void {
    this.#total -= freed;
    const share = this.#bytes.get(to)! - freed;
    if (count === entries.length) {
      this.#entries.delete(to);
      this.#bytes.delete(to);
    } else {
      entries.splice(0, count);
      this.#bytes.set(to, share);
    }
    if (share <= LOG_SHARE_BYTES) this.#asked.delete(to);
  }
}
