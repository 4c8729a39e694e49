import type { AckHeader, SealedMessage } from '@webpvm/vm-protocol';
import { ACK_MS } from './ack-schedule.ts';
import type { DataLink } from './data-link.ts';
import type { LanePair } from './lanes.ts';
import { type Clock, type Timer, systemClock } from '../clock.ts';

type Sent = Pick<SealedMessage, 'from' | 'to' | 'seq'>;

interface Unacked {
  to: string;
  seq: number;
  bytes: Uint8Array;
}

/**
 * A task's lanes close when it leaves or ends; a worker terminated mid-write may take with it
 * what its lane still buffered. What is not acknowledged this long after goes through the relay.
 */
const LANE_SETTLE_MS = 1000;
/** Acknowledgements go back every ACK_MS: what a closed lane carried waits this long for them. */
const LANE_CLOSED_ACK_MS = 3 * ACK_MS;

const pairKey = (from: string, to: string) => `${from}>${to}`;

/**
 * The copies of what this page's tasks sent over data channels and lanes, per link and pair, kept
 * until the receiving host acknowledges them. Whatever a link can no longer deliver — it broke,
 * the other host bounced it, its lane closed, the page is going away — goes through the relay
 * (`relay`), in order, before any later message of its pair.
 */
export class UnackedCopies {
  #relay: (bytes: Uint8Array) => void;
  #unacked = new Map<DataLink, Map<string, Unacked[]>>();
  /**
   * Per pair of a local sender, the highest seq acknowledged, and the highest bounced: a worker's
   * copy of what it wrote on a lane may come after either.
   */
  #acked = new Map<string, number>();
  #bounced = new Map<string, number>();
  /** Pairs a local task wrote on a lane: when it goes, what is unacknowledged goes another way. */
  #lanePairs = new Set<string>();
  #settling = new Set<Timer>();

  #clock: Clock;

  /** `relay` sends one copy's envelope bytes through the coordinator. */
  constructor(relay: (bytes: Uint8Array) => void, clock: Clock = systemClock) {
    this.#relay = relay;
    this.#clock = clock;
  }

  /** A message sent over `link`: kept until acknowledged. */
  keep(link: DataLink, message: Sent, bytes: Uint8Array): void {
    let pairs = this.#unacked.get(link);
    if (!pairs) {
      pairs = new Map();
      this.#unacked.set(link, pairs);
    }
    const key = pairKey(message.from, message.to);
    let entries = pairs.get(key);
    if (!entries) {
      entries = [];
      pairs.set(key, entries);
    }
    entries.push({ to: message.to, seq: message.seq, bytes });
  }

  /** A local task's worker wrote on a lane to `to`: when the task goes, its pair's copies settle (see `senderLeft`). */
  wroteOnLane(pair: Pick<Sent, 'from' | 'to'>): void {
    this.#lanePairs.add(pairKey(pair.from, pair.to));
  }

  /** Whether the receiving host acknowledged this message already (a lane's copy comes after it). */
  isAcknowledged(message: Sent): boolean {
    return this.acknowledgedUpTo(message.from, message.to) >= message.seq;
  }

  /** The highest seq of a local sender's pair its receiving host acknowledged. */
  acknowledgedUpTo(from: string, to: string): number {
    return this.#acked.get(pairKey(from, to)) ?? 0;
  }

  /** Whether the receiving host bounced this message already (a lane's copy comes after it). */
  wasBounced(message: Sent): boolean {
    return (this.#bounced.get(pairKey(message.from, message.to)) ?? 0) >= message.seq;
  }

  /** An acknowledgement: the copies it covers are dropped; `senderHere`, the mark is kept for later lane copies. */
  acked({ of, by, seq }: AckHeader, senderHere: boolean): void {
    const key = pairKey(of, by);
    if (senderHere) this.#acked.set(key, Math.max(seq, this.#acked.get(key) ?? 0));
    for (const pairs of this.#unacked.values()) {
      const entries = pairs.get(key);
      if (!entries) continue;
      let acked = 0;
      while (acked < entries.length && entries[acked]!.seq <= seq) acked++;
      if (acked === entries.length) pairs.delete(key);
      else entries.splice(0, acked);
    }
  }

  /** The host at the other end of `link` does not hold `by`: what was sent it there goes through the relay. */
  bounced(link: DataLink, { of, by, seq }: AckHeader): void {
    const key = pairKey(of, by);
    this.#bounced.set(key, Math.max(seq, this.#bounced.get(key) ?? 0));
    const pairs = this.#unacked.get(link);
    for (const [key, entries] of pairs ?? []) {
      if (entries[0]?.to !== by) continue;
      pairs!.delete(key);
      for (const entry of entries) this.#relay(entry.bytes);
    }
  }

  /** The link closed or broke: everything it did not see acknowledged goes through the relay, in order. Returns how many. */
  linkBroken(link: DataLink): number {
    const pairs = this.#unacked.get(link);
    this.#unacked.delete(link);
    let resent = 0;
    for (const entries of pairs?.values() ?? []) {
      for (const entry of entries) this.#relay(entry.bytes);
      resent += entries.length;
    }
    return resent;
  }

  /**
   * The page is going away: every copy goes through the relay too, in case its channel dies with
   * the page before delivering it. Receivers drop the copies they already have by seq.
   */
  departing(): void {
    for (const pairs of this.#unacked.values()) {
      for (const entries of pairs.values()) {
        for (const entry of entries) this.#relay(entry.bytes);
      }
    }
  }

  /**
   * The lane of `pair` closed: what it carried and is not acknowledged goes through the relay,
   * after the acknowledgements its receiver sent as it closed have had time to come (a lane
   * closes with its receiver, which acknowledges what it read as it goes).
   */
  laneClosed(pair: LanePair): void {
    this.#later(LANE_CLOSED_ACK_MS, () => this.#relayPair(pairKey(pair.from, pair.to)));
  }

  /**
   * Task `tid` of this page left or ended: what it wrote on lanes and is not acknowledged goes
   * through the relay once its lanes settled; its marks go (a later attempt starts afresh).
   */
  senderLeft(tid: string): void {
    const lanePairs = [...this.#lanePairs].filter((key) => key.startsWith(`${tid}>`));
    for (const key of lanePairs) this.#lanePairs.delete(key);
    if (lanePairs.length > 0) this.#later(LANE_SETTLE_MS, () => lanePairs.forEach((key) => this.#relayPair(key)));
    for (const map of [this.#acked, this.#bounced]) for (const key of map.keys()) if (key.startsWith(`${tid}>`)) map.delete(key);
  }

  stop(): void {
    for (const timer of this.#settling) this.#clock.clear(timer);
    this.#settling.clear();
  }

  #later(ms: number, run: () => void): void {
    const timer = this.#clock.setTimeout(() => {
      this.#settling.delete(timer);
      run();
    }, ms);
    this.#settling.add(timer);
  }

  #relayPair(key: string): void {
    for (const pairs of this.#unacked.values()) {
      const entries = pairs.get(key);
      if (!entries) continue;
      pairs.delete(key);
      for (const entry of entries) this.#relay(entry.bytes);
    }
  }
}
