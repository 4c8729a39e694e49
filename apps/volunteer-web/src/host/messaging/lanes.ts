import { LANE_IDS, LaneControl, type LaneGift, parseTid } from '@webpvm/vm-protocol';
import { FrameKind } from './channel-frames.ts';
import type { DataLink } from './data-link.ts';
import type { LinkControl } from './lane-links.ts';

/** The page channel to another host over which lanes are negotiated (a PeerChannel). */
export interface LaneCarrier extends DataLink {
  /** Opened by this page: its lanes take the even stream ids, the other page's the odd ones. */
  readonly outgoing: boolean;
  readonly isOpen: boolean;
}

export interface LanePair {
  from: string;
  to: string;
}

export interface LanesOptions {
  /** The open page channel to that peer, or null. */
  carrier(peerId: string): LaneCarrier | null;
  /**
   * Makes this page's end of the lane on stream `id` of the link to `carrier`'s host
   * (lane-links.ts) and hands it to the task `gift.tid`; `made` says whether it did.
   */
  make(carrier: LaneCarrier, id: number, gift: LaneGift, made: (ok: boolean) => void): void;
  /** A link frame from the host at the other end of `carrier`. */
  link(carrier: LaneCarrier, control: LinkControl): void;
  /** The receiving end of a lane `pair.from` of this page writes on is gone. */
  gone(pair: LanePair): void;
  /** A lane is asked for in the name of `tid`: `admit` once the coordinator places it at the carrier's peer, else `refuse` (sender-check.ts). */
  checkSender(tid: string, carrier: LaneCarrier, admit: () => void, refuse: () => void): void;
  maxLanes?: number;
  now?: () => number;
}

interface Sending {
  pair: LanePair;
  id: number;
  carrier: LaneCarrier;
  given: boolean;
}

interface Receiving {
  pair: LanePair;
  id: number;
  carrier: LaneCarrier;
}

/** Lanes one page takes part in, both ways; each is one SCTP stream of a link, and Chromium keeps them cheap. */
const MAX_LANES = 64;
/** A pair whose lane was refused goes through the page channel this long before it asks again. */
const ASK_AGAIN_MS = 10_000;

const pairKey = ({ from, to }: LanePair) => `${from}>${to}`;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const encodeControl = (control: LaneControl) => utf8.encode(JSON.stringify(control));

/**
 * The lanes of this page (vm-protocol lane.ts). As a sender's page it asks for a lane when one
 * of its tasks sends over a page channel, and has the sending end handed to that task's worker
 * once the receiver's page has had the receiving end handed to the receiver's worker. Both ends
 * live in workers, made by the job's frames on their link: the pages only keep track of them,
 * for acknowledgements and for room.
 */
export class Lanes {
  #options: LanesOptions;
  #now: () => number;
  #sending = new Map<string, Sending>();
  #receiving = new Map<string, Receiving>();
  #refusedAt = new Map<string, number>();
  #nextId = new WeakMap<LaneCarrier, number>();

  constructor(options: LanesOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  get count(): number {
    return this.#sending.size + this.#receiving.size;
  }

  /** Task `from` of this page sent `to`, which runs at `peerId`: a lane may take the next messages. */
  offer(pair: LanePair, peerId: string): void {
    const key = pairKey(pair);
    if (this.#sending.has(key) || this.count >= (this.#options.maxLanes ?? MAX_LANES)) return;
    const refused = this.#refusedAt.get(key);
    if (refused !== undefined && this.#now() - refused < ASK_AGAIN_MS) return;
    const carrier = this.#options.carrier(peerId);
    const id = carrier && this.#allocate(carrier);
    if (!carrier || id === null) return;
    this.#sending.set(key, { pair: { ...pair }, id, carrier, given: false });
    carrier.send(FrameKind.lane, encodeControl({ op: 'open', id, ...pair }));
  }

  /** The page channel the lane of `pair` was negotiated on, once its sending task is given it. */
  carrierOf(pair: LanePair): LaneCarrier | null {
    const sending = this.#sending.get(pairKey(pair));
    return sending?.given ? sending.carrier : null;
  }

  /** The page channel to the sender's host of a lane that brings `pair.to` of this page its messages. */
  carrierIn(pair: LanePair): LaneCarrier | null {
    return this.#receiving.get(pairKey(pair))?.carrier ?? null;
  }

  /** A lane frame from the host at the other end of `carrier`. */
  control(carrier: LaneCarrier, payload: Uint8Array): void {
    let parsed;
    try {
      parsed = LaneControl.safeParse(JSON.parse(fromUtf8.decode(payload)));
    } catch {
      parsed = null;
    }
    if (!parsed?.success) {
      console.warn(`webpvm: dropped a lane frame from peer ${carrier.remotePeerId}`);
      return;
    }
    const control = parsed.data;
    if (control.op === 'link' || control.op === 'signal' || control.op === 'unlink') return this.#options.link(carrier, control);
    if (control.op === 'open') {
      const { id, from, to } = control;
      this.#options.checkSender(from, carrier, () => this.#accept(carrier, id, { from, to }), () => carrier.send(FrameKind.lane, encodeControl({ op: 'refused', id })));
      return;
    }
    const [key, sending] = [...this.#sending].find(([, s]) => s.carrier === carrier && s.id === control.id && (control.op === 'gone' || !s.given)) ?? [];
    if (!key || !sending) return;
    if (control.op === 'gone') {
      this.#sending.delete(key);
      if (sending.given) this.#options.gone(sending.pair);
      return;
    }
    if (control.op === 'refused') {
      this.#sending.delete(key);
      this.#refusedAt.set(key, this.#now());
      return;
    }
    if (!carrier.isOpen) {
      this.#sending.delete(key);
      return;
    }
    // Given from now on: the worker may write on its end before this page hears that the frame made it.
    sending.given = true;
    const { from, to } = sending.pair;
    this.#options.make(carrier, sending.id, { type: 'lane-out', tid: from, to }, (made) => {
      if (!made && this.#sending.get(key) === sending) this.#sending.delete(key);
    });
  }

  /** The worker of `pair.from` saw its lane close. */
  closed(pair: LanePair): void {
    this.#sending.delete(pairKey(pair));
  }

  /** Task `tid` ended here or left: its lanes, both ways, closed with its worker (or as it ended). */
  taskGone(tid: string): void {
    for (const [key, sending] of this.#sending) if (sending.pair.from === tid) this.#sending.delete(key);
    for (const [key, receiving] of this.#receiving) {
      if (receiving.pair.to !== tid) continue;
      this.#receiving.delete(key);
      if (receiving.carrier.isOpen) receiving.carrier.send(FrameKind.lane, encodeControl({ op: 'gone', id: receiving.id }));
    }
  }

  /** The page channel closed: every lane on its connection is gone. */
  carrierBroken(carrier: LaneCarrier): void {
    for (const [key, sending] of this.#sending) if (sending.carrier === carrier) this.#sending.delete(key);
    for (const [key, receiving] of this.#receiving) if (receiving.carrier === carrier) this.#receiving.delete(key);
  }

  #accept(carrier: LaneCarrier, id: number, pair: LanePair): void {
    const key = pairKey(pair);
    // The other page opened lanes of the parity opposite to this page's.
    const theirParity = carrier.outgoing ? 1 : 0;
    // A lane the pair had is over: its sender's page asks again only once it gave that one up
    // (refused, gone, closed, or its task left, whose worker's end does not close as it ends).
    const previous = this.#receiving.get(key);
    const acceptable =
      id % 2 === theirParity &&
      this.count - (previous ? 1 : 0) < (this.#options.maxLanes ?? MAX_LANES) &&
      parseTid(pair.from).jobId === parseTid(pair.to).jobId;
    if (!acceptable) {
      carrier.send(FrameKind.lane, encodeControl({ op: 'refused', id }));
      return;
    }
    const receiving: Receiving = { pair, id, carrier };
    this.#receiving.set(key, receiving);
    this.#options.make(carrier, id, { type: 'lane-in', tid: pair.to, from: pair.from }, (made) => {
      if (this.#receiving.get(key) !== receiving) return;
      if (!made) this.#receiving.delete(key);
      // The sender writes once it hears `ready`: by then the receiving task has its end.
      if (carrier.isOpen) carrier.send(FrameKind.lane, encodeControl({ op: made ? 'ready' : 'refused', id }));
    });
  }

  /** The next free stream id of this page's parity on that connection, or null when all are taken. */
  #allocate(carrier: LaneCarrier): number | null {
    const parity = carrier.outgoing ? 0 : 1;
    const used = new Set([...this.#sending.values()].filter((s) => s.carrier === carrier).map((s) => s.id));
    const span = LANE_IDS.last - LANE_IDS.first + 1;
    let id = this.#nextId.get(carrier) ?? LANE_IDS.first + parity;
    for (let tried = 0; tried < span / 2; tried++) {
      const candidate = id;
      id += 2;
      if (id > LANE_IDS.last) id = LANE_IDS.first + parity;
      if (used.has(candidate)) continue;
      // Ids go round rather than back to the lowest free one: a just-closed stream may still be resetting.
      this.#nextId.set(carrier, id);
      return candidate;
    }
    return null;
  }
}
