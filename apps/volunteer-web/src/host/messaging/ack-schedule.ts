import { encodeEnvelope } from '@webpvm/vm-protocol';
import { FrameKind } from './channel-frames.ts';
import type { DataLink } from './data-link.ts';
import type { Inboxes } from './inboxes.ts';
import { type Clock, type Timer, systemClock } from '../clock.ts';

/** Acknowledgements go back this often, or sooner after this many messages on one channel. */
export const ACK_MS = 20;
const ACK_EVERY = 64;

interface AckDue {
  of: string;
  by: string;
  acked: number;
  /** The highest seq of the pair received on this link. */
  seen: number;
}

const pairKey = (of: string, by: string) => `${of}>${by}`;

/**
 * Tells the sending host over `link` that `by` does not hold what `of` sent it from `seq` on: it
 * goes through the relay instead.
 */
export function sendBounce(link: DataLink, of: string, by: string, seq: number): void {
  link.send(FrameKind.bounce, encodeEnvelope({ type: 'ack', of, by, seq }));
}

/**
 * The acknowledgements this page owes the hosts that sent its tasks messages over data channels
 * and lanes: per link and pair, the highest seq handed to the receiving task, sent in batches —
 * every ACK_MS, or as soon as ACK_EVERY messages came. A receiver that left before it read the
 * rest gets those bounced instead, so its sender re-sends them through the relay.
 */
export class AckSchedule {
  #inbox: Pick<Inboxes, 'holds' | 'postedFrom'>;
  #due = new Map<DataLink, Map<string, AckDue>>();
  #receivedSinceAck = 0;
  #timer: Timer | null = null;
  #soon = false;

  #clock: Clock;

  constructor(inbox: Pick<Inboxes, 'holds' | 'postedFrom'>, clock: Clock = systemClock) {
    this.#inbox = inbox;
    this.#clock = clock;
  }

  /** Task `by` of this page received `of`'s message `seq` over `link`: it is acknowledged once handed over. */
  later(link: DataLink, of: string, by: string, seq: number): void {
    let pairs = this.#due.get(link);
    if (!pairs) {
      pairs = new Map();
      this.#due.set(link, pairs);
    }
    const key = pairKey(of, by);
    const due = pairs.get(key);
    if (due) due.seen = Math.max(due.seen, seq);
    else pairs.set(key, { of, by, acked: 0, seen: seq });
    this.#receivedSinceAck += 1;
    // The inbox hands messages to workers in a microtask queued before this one: ack after it.
    if (this.#receivedSinceAck >= ACK_EVERY && !this.#soon) {
      this.#soon = true;
      queueMicrotask(() => this.flush());
    }
    this.#timer ??= this.#clock.setTimeout(() => this.flush(), ACK_MS);
  }

  /** Sends what is due now: a task about to leave or end has its reads acknowledged while its inbox still knows them. */
  flush(): void {
    this.#soon = false;
    this.#receivedSinceAck = 0;
    if (this.#timer) this.#clock.clear(this.#timer);
    this.#timer = null;
    const inbox = this.#inbox;
    for (const [link, pairs] of this.#due) {
      for (const [key, due] of pairs) {
        const posted = inbox.postedFrom(due.by, due.of);
        if (posted > due.acked) {
          link.send(FrameKind.envelope, encodeEnvelope({ type: 'ack', of: due.of, by: due.by, seq: posted }));
          due.acked = posted;
        }
        const gone = !inbox.holds(due.by);
        // The task left before reading the rest: its sender sends that through the relay.
        if (gone && due.acked < due.seen) sendBounce(link, due.of, due.by, due.seen);
        if (gone || due.acked >= due.seen) pairs.delete(key);
      }
      if (pairs.size === 0) this.#due.delete(link);
    }
    if (this.#due.size > 0) this.#timer = this.#clock.setTimeout(() => this.flush(), ACK_MS);
  }

  /** The link closed: nothing more can be acknowledged on it (its sender re-sends what it did not see acknowledged). */
  linkBroken(link: DataLink): void {
    this.#due.delete(link);
  }

  stop(): void {
    if (this.#timer) this.#clock.clear(this.#timer);
    this.#timer = null;
  }
}
