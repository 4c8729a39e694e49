import { RELAY_LANE_PATH, type CoordinatorMessageOf } from '@webpvm/vm-protocol';
import type { LanePair } from './lanes.ts';

export interface RelayLaneRequestsOptions {
  /** Sends `lane-open` to the coordinator. */
  ask(pair: LanePair): void;
  /** Sends `lane-declined`: this page has no task for the end it was given. */
  decline(token: string): void;
  /** Hands the worker of `pair.from` the sending end, the socket URL for `token`; false when that task does not run here. */
  giveOut(pair: LanePair, token: string): boolean;
  /** Hands the worker of `pair.to` the receiving end, likewise. */
  giveIn(pair: LanePair, token: string): boolean;
  /**
   * How long a pair goes through the relay before it asks for a relay lane: 0 without data
   * channels; with them, time for a channel (and its lane) to open first.
   */
  patienceMs: number;
  maxLanes?: number;
  now?: () => number;
}

interface Sending {
  pair: LanePair;
  askedAt: number;
  /** When its worker was handed the sending end; null while the coordinator has not answered. */
  givenAt: number | null;
}

/** A pair's lanes that closed soon after they were given, in a row, and when its next one may be asked for. */
interface Backoff {
  strikes: number;
  notBefore: number;
}

/** Relay lanes this page's tasks send on. */
const MAX_LANES = 64;
/** An ask the coordinator did not answer (it went down) is made again after this long. */
const ANSWER_MS = 10_000;
/** A pair refused a relay lane goes through the page this long before it asks again. */
const ASK_AGAIN_MS = 10_000;
/**
 * A pair whose relay lane closed (its receiver moved, or the worker could not open the socket)
 * waits this long before it asks again, twice as long after each lane in a row that closed within
 * it (a socket the browser refuses, say), up to MAX_REOPEN_MS.
 */
const REOPEN_MS = 1_000;
const MAX_REOPEN_MS = 30_000;
/** Pairs whose first relayed message is remembered, for patienceMs. */
const MAX_WAITING = 10_000;

const pairKey = ({ from, to }: LanePair) => `${from}>${to}`;

/** Where a task's worker opens the relay lane end issued with `token`: the coordinator socket's origin. */
export function relayLaneUrl(socketUrl: string, token: string): string {
  const url = new URL(socketUrl);
  url.pathname = RELAY_LANE_PATH;
  url.search = `?token=${token}`;
  return url.href;
}

/**
 * This page's side of relay lanes (vm-protocol lane.ts): a pair whose messages go through the
 * coordinator's relay asks for a lane, and once the coordinator grants one, the sender's worker
 * writes the next messages on a WebSocket of its own, which the coordinator pipes to the
 * receiver's worker. The page only asks, hands the granted ends to its workers and keeps track of
 * them; it then sees only the sender's copies and the receiver's reports, as with lanes between pages.
 */
export class RelayLaneRequests {
  #options: RelayLaneRequestsOptions;
  #now: () => number;
  #sending = new Map<string, Sending>();
  #receiving = new Set<string>();
  /** Per pair, when it may ask again after a refusal or a closed lane. */
  #backoff = new Map<string, Backoff>();
  #firstRelayed = new Map<string, number>();

  constructor(options: RelayLaneRequestsOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Sending ends this page asked for (the coordinator caps what each host receives). */
  get count(): number {
    return this.#sending.size;
  }

  /** Task `from` of this page sent `to` through the relay: a relay lane may take the next messages. */
  offer(pair: LanePair): void {
    const key = pairKey(pair);
    const now = this.#now();
    const sending = this.#sending.get(key);
    if (sending && (sending.givenAt !== null || now - sending.askedAt < ANSWER_MS)) return;
    if (!sending && this.count >= (this.#options.maxLanes ?? MAX_LANES)) return;
    if (now < (this.#backoff.get(key)?.notBefore ?? 0)) return;
    if (this.#options.patienceMs > 0) {
      const first = this.#firstRelayed.get(key);
      if (first === undefined) {
        if (this.#firstRelayed.size >= MAX_WAITING) this.#firstRelayed.delete(this.#firstRelayed.keys().next().value!);
        this.#firstRelayed.set(key, now);
        return;
      }
      if (now - first < this.#options.patienceMs) return;
    }
    this.#sending.set(key, { pair: { ...pair }, askedAt: now, givenAt: null });
    this.#options.ask(pair);
  }

  /** The coordinator gave this page one end of a lane. */
  granted({ end, from, to, token }: CoordinatorMessageOf<'lane'>): void {
    const pair = { from, to };
    const key = pairKey(pair);
    if (end === 'in') {
      // A pair's earlier lane may have closed at the coordinator unseen here: its worker reads both.
      if (this.#options.giveIn(pair, token)) this.#receiving.add(key);
      else this.#options.decline(token);
      return;
    }
    const sending = this.#sending.get(key);
    if (!sending || sending.givenAt !== null || !this.#options.giveOut(pair, token)) {
      // The coordinator closes the lane when its receiving end sees no sender in time.
      if (sending?.givenAt === null) this.#sending.delete(key);
      return;
    }
    sending.givenAt = this.#now();
  }

  refused(pair: LanePair): void {
    const key = pairKey(pair);
    if (this.#sending.get(key)?.givenAt === null) this.#sending.delete(key);
    this.#backoff.set(key, { strikes: this.#backoff.get(key)?.strikes ?? 0, notBefore: this.#now() + ASK_AGAIN_MS });
  }

  /** Whether `pair.from`'s worker writes to `pair.to` on a relay lane: its copies are kept as a lane's. */
  sends(pair: LanePair): boolean {
    const givenAt = this.#sending.get(pairKey(pair))?.givenAt;
    return givenAt !== undefined && givenAt !== null;
  }

  /** Whether a relay lane brings `pair.to` of this page the messages of `pair.from`. */
  receives(pair: LanePair): boolean {
    return this.#receiving.has(pairKey(pair));
  }

  /** The worker of `pair.from` saw its relay lane close. */
  closed(pair: LanePair): void {
    const key = pairKey(pair);
    const now = this.#now();
    const lived = now - (this.#sending.get(key)?.givenAt ?? now);
    this.#sending.delete(key);
    const strikes = lived < REOPEN_MS ? (this.#backoff.get(key)?.strikes ?? 0) + 1 : 0;
    this.#backoff.set(key, { strikes, notBefore: now + Math.min(REOPEN_MS * 2 ** strikes, MAX_REOPEN_MS) });
  }

  /** Task `tid` ended here or left: its lanes, both ways, closed with it. */
  taskGone(tid: string): void {
    for (const [key, { pair }] of this.#sending) if (pair.from === tid) this.#sending.delete(key);
    for (const key of this.#receiving) if (key.endsWith(`>${tid}`)) this.#receiving.delete(key);
    for (const map of [this.#firstRelayed, this.#backoff]) for (const key of map.keys()) if (key.startsWith(`${tid}>`)) map.delete(key);
  }

  /**
   * The coordinator link dropped: it closed every relay lane of this page. The workers report
   * their sending ends closed; receiving ends are forgotten here now.
   */
  linkLost(): void {
    for (const [key, sending] of this.#sending) if (sending.givenAt === null) this.#sending.delete(key);
    this.#receiving.clear();
  }
}
