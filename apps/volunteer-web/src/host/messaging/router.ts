import {
  LIMITS,
  decodeEnvelope,
  encodeEnvelope,
  parseTid,
  sealDecoded,
  type AckHeader,
  type ImagePartHeader,
  type SealedMessage,
} from '@webpvm/vm-protocol';
import { FrameKind } from './channel-frames.ts';
import type { DataLink, DataLinks } from './data-link.ts';
import type { Inboxes } from './inboxes.ts';
import type { LanePair } from './lanes.ts';

export interface MessageCounters {
  local: number;
  /** Sent over data channels, lanes included. */
  channelOut: number;
  /** Of those, written on a lane by the task's worker (lanes.ts). */
  laneOut: number;
  channelIn: number;
  relayOut: number;
  /** Of those, written on a relay lane by the task's worker (relay-lanes.ts). */
  relayLaneOut: number;
  relayIn: number;
  resentAfterBreak: number;
}

export interface Route {
  tid: string;
  peerId: string | null;
}

export interface RouterOptions {
  inbox: Pick<Inboxes, 'holds' | 'accept' | 'postedFrom'>;
  /** Sends envelope bytes through the coordinator; kept in order while offline. */
  relay(bytes: Uint8Array): void;
  /** Asks the coordinator where these tasks run (a `locate` frame). */
  locate(tids: string[]): void;
  /** Null with `?p2p=off`: everything that is not local goes through the relay. */
  links: DataLinks | null;
  /** Offered each pair whose message went over a page channel: a lane may take the next ones. */
  lanes?: { offer(pair: LanePair, peerId: string): void } | null;
  /** Offered each pair whose message went through the relay: a relay lane may take the next ones. */
  relayLanes?: { offer(pair: LanePair): void } | null;
  /** A piece of a migrating task's image, from the coordinator or from another host. */
  part(header: ImagePartHeader, bytes: Uint8Array): void;
  now?: () => number;
}

interface Unacked {
  to: string;
  seq: number;
  bytes: Uint8Array;
}

interface AckDue {
  of: string;
  by: string;
  acked: number;
  /** The highest seq of the pair received on this link. */
  seen: number;
}

/** A task asks where another runs at most this often. */
const LOCATE_AGAIN_MS = 1000;
/** Acknowledgements go back this often, or sooner after this many messages on one channel. */
const ACK_MS = 20;
const ACK_EVERY = 64;
/**
 * A task's lanes close when it leaves or ends; a worker terminated mid-write may take with it
 * what its lane still buffered. What is not acknowledged this long after goes through the relay.
 */
const LANE_SETTLE_MS = 1000;
/** Acknowledgements go back every ACK_MS: what a closed lane carried waits this long for them. */
const LANE_CLOSED_ACK_MS = 3 * ACK_MS;
/** Tasks that ended well on this page: late messages for them are dropped, not bounced. */
const FINISHED_REMEMBERED = 10_000;

const pairKey = (from: string, to: string) => `${from}>${to}`;
const sameJob = (a: string, b: string) => parseTid(a).jobId === parseTid(b).jobId;

/**
 * Where each message a local task sends goes: to a task on this page in memory, over an open
 * data channel to the host of the receiver, or else through the coordinator's relay (asking at
 * the same time where the receiver runs, so that a channel can take over).
 *
 * Exactly once across path changes: a message sent over a channel is kept until the receiving
 * host acknowledges it; when the channel breaks, everything unacknowledged goes through the
 * relay, before any later message of its pair. The receiver's reorder buffer drops duplicates
 * and restores order when a fast channel overtakes the relay.
 *
 * A pair that has sent over a channel may get a lane (lanes.ts): its messages then go worker to
 * worker, and this router sees them as the sender's copies (laneSent) and the receiver's reports
 * (laneReceived), which it keeps and acknowledges like any channel's.
 */
export class MessageRouter {
  readonly counters: MessageCounters = { local: 0, channelOut: 0, laneOut: 0, channelIn: 0, relayOut: 0, relayLaneOut: 0, relayIn: 0, resentAfterBreak: 0 };
  /**
   * The carrier of relay lanes: their copies are kept under it, and their acknowledgements go
   * through the relay. Bounces are not sent on it: a relay lane's sender learns that its receiver
   * is gone when the coordinator closes the lane.
   */
  readonly relayLink: DataLink = {
    remotePeerId: 'coordinator',
    send: (kind, payload) => {
      if (kind === FrameKind.envelope) this.#options.relay(payload);
    },
  };
  #options: RouterOptions;
  #now: () => number;
  /** Per local sender, the last seq it sent to each receiver: reported with its outcome. */
  #lastSent = new Map<string, Map<string, number>>();
  #routes = new Map<string, string>();
  #asked = new Map<string, number>();
  #toLocate = new Set<string>();
  #unacked = new Map<DataLink, Map<string, Unacked[]>>();
  #ackDue = new Map<DataLink, Map<string, AckDue>>();
  #receivedSinceAck = 0;
  #ackTimer: ReturnType<typeof setTimeout> | null = null;
  #ackSoon = false;
  #finished = new Set<string>();
  /**
   * Per pair of a local sender, the highest seq acknowledged, and the highest bounced: a worker's
   * copy of what it wrote on a lane may come after either.
   */
  #acked = new Map<string, number>();
  #bounced = new Map<string, number>();
  /** Pairs a local task wrote on a lane: when it goes, what is unacknowledged goes another way. */
  #lanePairs = new Set<string>();
  #settling = new Set<ReturnType<typeof setTimeout>>();

  constructor(options: RouterOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** A message from a task of this page. */
  send(message: SealedMessage): void {
    this.#noteSent(message);
    if (this.#options.inbox.accept(message)) {
      this.counters.local += 1;
      return;
    }
    const bytes = message.envelope;
    const link = this.#linkTo(message.to);
    if (link) {
      link.send(FrameKind.envelope, bytes);
      this.#keep(link, message, bytes);
      this.counters.channelOut += 1;
      this.#options.lanes?.offer({ from: message.from, to: message.to }, link.remotePeerId);
      return;
    }
    this.#toRelay(message.to, bytes);
    this.#options.relayLanes?.offer({ from: message.from, to: message.to });
  }

  /**
   * A local task's worker wrote this message on its lane, which rides on `carrier` (`relayLink`
   * for a relay lane; null: the lane's page channel is gone). The copy is kept like a message
   * sent on that channel — unless the other host already acknowledged or bounced it: the copy can
   * come after either.
   */
  laneSent(message: Pick<SealedMessage, 'from' | 'to' | 'seq'>, bytes: Uint8Array, carrier: DataLink | null): void {
    this.#noteSent(message);
    if (carrier === this.relayLink) {
      this.counters.relayOut += 1;
      this.counters.relayLaneOut += 1;
    } else {
      this.counters.channelOut += 1;
      this.counters.laneOut += 1;
    }
    const key = pairKey(message.from, message.to);
    this.#lanePairs.add(key);
    if ((this.#acked.get(key) ?? 0) >= message.seq) return;
    if (carrier && (this.#bounced.get(key) ?? 0) < message.seq) this.#keep(carrier, message, bytes);
    else this.#toRelay(message.to, bytes);
  }

  /** A lane brought this message straight to its receiver's worker, which reported it: its sender hears of it over `carrier`. */
  laneReceived(message: Pick<SealedMessage, 'from' | 'to' | 'seq'>, carrier: DataLink | null): void {
    if (carrier === this.relayLink) this.counters.relayIn += 1;
    else this.counters.channelIn += 1;
    if (carrier) this.#ackLater(carrier, message.from, message.to, message.seq);
  }

  /**
   * The lane of `pair` closed: what it carried and is not acknowledged goes through the relay,
   * after the acknowledgements its receiver sent as it closed have had time to come (a lane
   * closes with its receiver, which acknowledges what it read as it goes).
   */
  laneClosed(pair: LanePair): void {
    this.#later(LANE_CLOSED_ACK_MS, () => this.#relayUnacked(pairKey(pair.from, pair.to)));
  }

  /** The receivers a task sent to, each with the last seq: exit notifications come after them. */
  sentBy(tid: string): { to: string; seq: number }[] {
    return [...(this.#lastSent.get(tid) ?? [])].slice(0, LIMITS.spawnPerCall).map(([to, seq]) => ({ to, seq }));
  }

  /**
   * The task ended on this page; `ok` tasks are remembered so late messages for them are
   * dropped. Call it before the task's inbox closes: what it read is acknowledged now, while the
   * inbox still knows, and the rest goes back to its senders.
   */
  taskEnded(tid: string, ok: boolean): void {
    this.taskLeft(tid);
    if (!ok) return;
    this.#finished.add(tid);
    if (this.#finished.size > FINISHED_REMEMBERED) this.#finished.delete(this.#finished.values().next().value!);
  }

  /**
   * A task of this page left for another host: what it read is acknowledged now, the rest goes
   * back to its senders (call it before its inbox is cut). Messages it sent stay unacknowledged
   * here until their receivers acknowledge them.
   */
  taskLeft(tid: string): void {
    this.#lastSent.delete(tid);
    this.#flushAcks();
    const lanePairs = [...this.#lanePairs].filter((key) => key.startsWith(`${tid}>`));
    for (const key of lanePairs) this.#lanePairs.delete(key);
    if (lanePairs.length > 0) this.#later(LANE_SETTLE_MS, () => lanePairs.forEach((key) => this.#relayUnacked(key)));
    for (const map of [this.#acked, this.#bounced]) for (const key of map.keys()) if (key.startsWith(`${tid}>`)) map.delete(key);
  }

  /** A task arrives from another host: its exit notifications must follow what it sent before it came. */
  taskArrived(tid: string, sent: readonly { to: string; seq: number }[]): void {
    if (sent.length) this.#lastSent.set(tid, new Map(sent.map(({ to, seq }) => [to, seq])));
  }

  /** Envelope bytes from the relay (`link` null) or from a data channel. */
  receive(bytes: Uint8Array, link: DataLink | null): void {
    const decoded = decodeEnvelope(bytes);
    if (!decoded.ok) {
      console.warn(`webpvm: dropped an envelope from ${link ? `peer ${link.remotePeerId}` : 'the relay'}: ${decoded.error.message}`);
      return;
    }
    const { header, buffers } = decoded.value;
    if (header.type === 'ack') {
      this.#onAck(header);
      return;
    }
    if (header.type === 'part') {
      this.#options.part(header, buffers[0]!);
      return;
    }
    if (!sameJob(header.from, header.to)) return;
    const inbox = this.#options.inbox;
    if (!inbox.holds(header.to)) {
      if (link) link.send(FrameKind.bounce, encodeEnvelope({ type: 'ack', of: header.from, by: header.to, seq: header.seq }));
      else if (!this.#finished.has(header.to)) this.#options.relay(bytes);
      return;
    }
    const sealed = sealDecoded(header, buffers, bytes);
    if (!sealed.ok) {
      console.warn(`webpvm: dropped a message for ${header.to}: ${sealed.message}`);
      return;
    }
    inbox.accept(sealed.message);
    // An exit notification (seq 0) is the coordinator's, not a task's send: counting it would unbalance in and out.
    if (header.seq === 0) return;
    if (!link) {
      this.counters.relayIn += 1;
      return;
    }
    this.counters.channelIn += 1;
    this.#ackLater(link, header.from, header.to, header.seq);
  }

  /** The other host does not hold `by`: what this page sent it over `link` goes through the relay. */
  bounced(link: DataLink, payload: Uint8Array): void {
    const decoded = decodeEnvelope(payload);
    if (!decoded.ok || decoded.value.header.type !== 'ack') return;
    const { of, by, seq } = decoded.value.header;
    const key = pairKey(of, by);
    this.#bounced.set(key, Math.max(seq, this.#bounced.get(key) ?? 0));
    if (this.#routes.get(by) === link.remotePeerId) {
      this.#routes.delete(by);
      this.#asked.delete(by);
    }
    const pairs = this.#unacked.get(link);
    for (const [key, entries] of pairs ?? []) {
      if (entries[0]?.to !== by) continue;
      pairs!.delete(key);
      for (const entry of entries) this.#options.relay(entry.bytes);
      this.counters.relayOut += entries.length;
    }
  }

  /**
   * The channel closed or broke: every message it did not see acknowledged goes through the
   * relay, in order. Its host may be gone: where its tasks run is asked again.
   */
  linkBroken(link: DataLink): void {
    this.#ackDue.delete(link);
    for (const [tid, peerId] of this.#routes) {
      if (peerId !== link.remotePeerId) continue;
      this.#routes.delete(tid);
      this.#asked.delete(tid);
    }
    const pairs = this.#unacked.get(link);
    this.#unacked.delete(link);
    for (const entries of pairs?.values() ?? []) {
      for (const entry of entries) this.#options.relay(entry.bytes);
      this.counters.resentAfterBreak += entries.length;
      this.counters.relayOut += entries.length;
    }
  }

  /**
   * The page is going away: every message its channels have not seen acknowledged goes through
   * the relay too, in case the channel dies with the page before delivering it. Receivers drop
   * the copies they already have by seq.
   */
  departing(): void {
    for (const pairs of this.#unacked.values()) {
      for (const entries of pairs.values()) {
        for (const entry of entries) this.#options.relay(entry.bytes);
        this.counters.relayOut += entries.length;
      }
    }
  }

  /** The coordinator's answer to `locate`; a task not running anywhere has no route. */
  onRoutes(routes: Route[]): void {
    for (const { tid, peerId } of routes) {
      if (peerId === null) {
        this.#routes.delete(tid);
        continue;
      }
      this.#routes.set(tid, peerId);
      this.#options.links?.connect(peerId);
    }
  }

  stop(): void {
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    for (const timer of this.#settling) clearTimeout(timer);
    this.#settling.clear();
  }

  #linkTo(to: string): DataLink | null {
    const links = this.#options.links;
    const peerId = this.#routes.get(to);
    if (!links || !peerId) return null;
    const link = links.open(peerId);
    if (!link) links.connect(peerId);
    return link;
  }

  #noteSent({ from, to, seq }: Pick<SealedMessage, 'from' | 'to' | 'seq'>): void {
    let sent = this.#lastSent.get(from);
    if (!sent) {
      sent = new Map();
      this.#lastSent.set(from, sent);
    }
    sent.set(to, Math.max(seq, sent.get(to) ?? 0));
  }

  #toRelay(to: string, bytes: Uint8Array): void {
    this.#options.relay(bytes);
    this.counters.relayOut += 1;
    this.#locate(to);
  }

  #later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.#settling.delete(timer);
      run();
    }, ms);
    this.#settling.add(timer);
  }

  #relayUnacked(key: string): void {
    for (const pairs of this.#unacked.values()) {
      const entries = pairs.get(key);
      if (!entries) continue;
      pairs.delete(key);
      for (const entry of entries) this.#options.relay(entry.bytes);
      this.counters.relayOut += entries.length;
    }
  }

  #locate(tid: string): void {
    if (!this.#options.links || this.#routes.has(tid)) return;
    const asked = this.#asked.get(tid);
    const now = this.#now();
    if (asked !== undefined && now - asked < LOCATE_AGAIN_MS) return;
    this.#asked.set(tid, now);
    if (this.#toLocate.size === 0) queueMicrotask(() => this.#flushLocate());
    this.#toLocate.add(tid);
  }

  #flushLocate(): void {
    const tids = [...this.#toLocate];
    this.#toLocate.clear();
    for (let i = 0; i < tids.length; i += LIMITS.itemsPerBatch) this.#options.locate(tids.slice(i, i + LIMITS.itemsPerBatch));
  }

  #keep(link: DataLink, message: Pick<SealedMessage, 'from' | 'to' | 'seq'>, bytes: Uint8Array): void {
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

  #onAck({ of, by, seq }: AckHeader): void {
    const key = pairKey(of, by);
    if (this.#lastSent.has(of)) this.#acked.set(key, Math.max(seq, this.#acked.get(key) ?? 0));
    for (const pairs of this.#unacked.values()) {
      const entries = pairs.get(key);
      if (!entries) continue;
      let acked = 0;
      while (acked < entries.length && entries[acked]!.seq <= seq) acked++;
      if (acked === entries.length) pairs.delete(key);
      else entries.splice(0, acked);
    }
  }

  #ackLater(link: DataLink, of: string, by: string, seq: number): void {
    let pairs = this.#ackDue.get(link);
    if (!pairs) {
      pairs = new Map();
      this.#ackDue.set(link, pairs);
    }
    const key = pairKey(of, by);
    const due = pairs.get(key);
    if (due) due.seen = Math.max(due.seen, seq);
    else pairs.set(key, { of, by, acked: 0, seen: seq });
    this.#receivedSinceAck += 1;
    // The inbox hands messages to workers in a microtask queued before this one: ack after it.
    if (this.#receivedSinceAck >= ACK_EVERY && !this.#ackSoon) {
      this.#ackSoon = true;
      queueMicrotask(() => this.#flushAcks());
    }
    this.#ackTimer ??= setTimeout(() => this.#flushAcks(), ACK_MS);
  }

  #flushAcks(): void {
    this.#ackSoon = false;
    this.#receivedSinceAck = 0;
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    const inbox = this.#options.inbox;
    for (const [link, pairs] of this.#ackDue) {
      for (const [key, due] of pairs) {
        const posted = inbox.postedFrom(due.by, due.of);
        if (posted > due.acked) {
          link.send(FrameKind.envelope, encodeEnvelope({ type: 'ack', of: due.of, by: due.by, seq: posted }));
          due.acked = posted;
        }
        const gone = !inbox.holds(due.by);
        // The task left before reading the rest: its sender sends that through the relay.
        if (gone && due.acked < due.seen) link.send(FrameKind.bounce, encodeEnvelope({ type: 'ack', of: due.of, by: due.by, seq: due.seen }));
        if (gone || due.acked >= due.seen) pairs.delete(key);
      }
      if (pairs.size === 0) this.#ackDue.delete(link);
    }
    if (this.#ackDue.size > 0) this.#ackTimer = setTimeout(() => this.#flushAcks(), ACK_MS);
  }
}
