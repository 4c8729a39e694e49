import type { SealedMessage } from '@webpvm/vm-protocol';

/**
 * The messages one task receives, put back in send order per sender. Paths race each other (a
 * message on a fresh data channel can overtake an earlier one still in the relay) and a message
 * re-sent after a channel broke may arrive twice, so: deliver seq n+1 only after n, buffer gaps,
 * drop what was delivered already. An exit notice is its ended sender's next message.
 */
export class ReorderBuffer {
  /** Per sender, the highest seq delivered with nothing missing below it. */
  #delivered: Map<string, number>;
  #gaps = new Map<string, Map<number, SealedMessage>>();

  /** A buffer that goes on where another left off: a migrated task's in-order seqs come with it. */
  constructor(delivered: ReadonlyMap<string, number> = new Map()) {
    this.#delivered = new Map(delivered);
  }

  /** Per sender, what was delivered in order: a migrating task takes it along. */
  delivered(): Map<string, number> {
    return new Map(this.#delivered);
  }

  /** What waits for an earlier message: a migrating task takes it along too. */
  waiting(): SealedMessage[] {
    return [...this.#gaps.values()].flatMap((gap) => [...gap.values()]);
  }

  deliveredFrom(from: string): number {
    return this.#delivered.get(from) ?? 0;
  }

  /** Whether `message` waits here for an earlier message of its sender. */
  isWaiting(message: SealedMessage): boolean {
    return this.#gaps.get(message.from)?.get(message.seq) === message;
  }

  /** The messages that can be delivered now, in order; empty when `message` waits or repeats. */
  accept(message: SealedMessage): SealedMessage[] {
    const { from, seq } = message;
    const done = this.deliveredFrom(from);
    if (seq <= done) return [];
    let waiting = this.#gaps.get(from);
    if (!waiting) {
      waiting = new Map();
      this.#gaps.set(from, waiting);
    }
    if (waiting.has(seq)) return [];
    waiting.set(seq, message);
    return this.#releaseNext(from);
  }

  /**
   * The task has every message of `from` up to `seq`, some of which did not come through here
   * (a lane brought them to its worker): what waited for them is ready now.
   */
  advance(from: string, seq: number): SealedMessage[] {
    if (seq <= this.deliveredFrom(from)) return [];
    this.#delivered.set(from, seq);
    const waiting = this.#gaps.get(from);
    for (const s of waiting?.keys() ?? []) if (s <= seq) waiting!.delete(s);
    return this.#releaseNext(from);
  }

  /** What waits for `from` right after its delivered seq, without a gap: now delivered. */
  #releaseNext(from: string): SealedMessage[] {
    const waiting = this.#gaps.get(from);
    const ready: SealedMessage[] = [];
    let done = this.deliveredFrom(from);
    for (let m = waiting?.get(done + 1); m; m = waiting!.get(done + 1)) {
      ready.push(m);
      waiting!.delete(++done);
    }
    if (waiting?.size === 0) this.#gaps.delete(from);
    if (ready.length > 0) this.#delivered.set(from, done);
    return ready;
  }
}
