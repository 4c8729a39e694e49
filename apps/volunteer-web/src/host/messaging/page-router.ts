import { LIMITS, decodeEnvelope, parseTid, sealDecoded, type EnvelopeHeader, type ImagePartHeader, type SealedMessage } from '@webpvm/vm-protocol';
import { AckSchedule, sendBounce } from './ack-schedule.ts';
import { FrameKind } from './channel-frames.ts';
import type { DataLink, DataLinks } from './data-link.ts';
import type { Inboxes } from './inboxes.ts';
import type { LanePair } from './lanes.ts';
import { RouteTable, type Route } from './route-table.ts';
import { SenderCheck } from './sender-check.ts';
import { UnackedCopies } from './unacked-copies.ts';
import type { Clock } from '../clock.ts';

export interface MessageCounters {
  local: number;
  /** Sent over data channels, lanes included. */
  channelOut: number;
  /** Of those, written on a lane by the task's worker (lanes.ts). */
  laneOut: number;
  channelIn: number;
  relayOut: number;
  /** Of those, written on a relay lane by the task's worker (relay-lane-requests.ts). */
  relayLaneOut: number;
  relayIn: number;
  resentAfterBreak: number;
  /**
   * Frames dropped because they came from a peer the coordinator did not name for their task:
   * messages, acknowledgements and lane requests in another task's name, image pieces nobody
   * announced (sender-check.ts). Forged, or — rarely — from a task that had just moved.
   */
  forged: number;
}

export interface PageRouterOptions {
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
  /**
   * A piece of a migrating task's image, from the coordinator (`fromPeer` null) or from another
   * host; false when it was not announced from that peer, and dropped.
   */
  part(header: ImagePartHeader, bytes: Uint8Array, fromPeer: string | null): boolean;
  /** The host of `by` acknowledged the messages of `of` to it up to `seq`: the worker of `of`, if here, drops its copies. */
  acked?(of: string, by: string, seq: number): void;
  /** The same, for an `of` that is not running here (it ended, or left): its ended log, if here, marks them. */
  ackedElsewhere?(of: string, by: string, seq: number): void;
  now?: () => number;
  /** Acknowledgements and re-sends keep time on a hidden page too (clock.ts). */
  clock?: Clock;
}

/** Tasks that ended well on this page: late messages for them are dropped, not bounced. */
const FINISHED_REMEMBERED = 10_000;

const sameJob = (a: string, b: string) => parseTid(a).jobId === parseTid(b).jobId;

/**
 * Where each message a local task sends goes: to a task on this page in memory, over an open
 * data channel to the host of the receiver, or else through the coordinator's relay (asking at
 * the same time where the receiver runs, so that a channel can take over: route-table.ts).
 *
 * Exactly once across path changes: a message sent over a channel is kept until the receiving
 * host acknowledges it (unacked-copies.ts); when the channel breaks, everything unacknowledged
 * goes through the relay, before any later message of its pair. The receiver's reorder buffer
 * drops duplicates and restores order when a fast channel overtakes the relay, and acknowledges
 * what it hands over (ack-schedule.ts).
 *
 * A pair that has sent over a channel may get a lane (lanes.ts): its messages then go worker to
 * worker, and this router hears of them from the sender's worker (laneWrote; its copies, should
 * the lane fail, come only when they may have to go another way: laneSent) and from the
 * receiver's reports (laneReceived), which it acknowledges like any channel's.
 */
export class PageRouter {
  readonly counters: MessageCounters = { local: 0, channelOut: 0, laneOut: 0, channelIn: 0, relayOut: 0, relayLaneOut: 0, relayIn: 0, resentAfterBreak: 0, forged: 0 };
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
  #options: PageRouterOptions;
  #routes: RouteTable;
  #senders: SenderCheck;
  #copies: UnackedCopies;
  #acks: AckSchedule;
  /** Per local sender, the last seq it sent to each receiver: reported with its outcome. */
  #lastSent = new Map<string, Map<string, number>>();
  #finished = new Set<string>();

  constructor(options: PageRouterOptions) {
    this.#options = options;
    this.#routes = new RouteTable({ links: options.links, locate: options.locate, now: options.now });
    this.#senders = new SenderCheck(this.#routes, options.clock, options.now);
    this.#copies = new UnackedCopies((bytes) => {
      options.relay(bytes);
      this.counters.relayOut += 1;
    }, options.clock);
    this.#acks = new AckSchedule(options.inbox, options.clock);
  }

  /** A message from a task of this page. */
  send(message: SealedMessage): void {
    this.#noteSent(message);
    if (this.#options.inbox.accept(message)) {
      this.counters.local += 1;
      return;
    }
    const bytes = message.envelope;
    const link = this.#routes.linkTo(message.to);
    if (link) {
      link.send(FrameKind.envelope, bytes);
      this.#copies.keep(link, message, bytes);
      this.counters.channelOut += 1;
      this.#options.lanes?.offer({ from: message.from, to: message.to }, link.remotePeerId);
      return;
    }
    this.#toRelay(message.to, bytes);
    this.#options.relayLanes?.offer({ from: message.from, to: message.to });
  }

  /** A local task's worker wrote `count` messages of `pair` on its lane (a relay lane: `relay`), the last one `seq`. */
  laneWrote(pair: LanePair, seq: number, count: number, relay: boolean): void {
    this.#noteSent({ ...pair, seq });
    if (relay) {
      this.counters.relayOut += count;
      this.counters.relayLaneOut += count;
    } else {
      this.counters.channelOut += count;
      this.counters.laneOut += count;
    }
    this.#copies.wroteOnLane(pair);
  }

  /**
   * A local task's worker hands over its copy of a message it wrote on its lane, which rides on
   * `carrier` (`relayLink` for a relay lane; null: the lane's page channel is gone). The copy is
   * kept like a message sent on that channel — unless the other host already acknowledged or
   * bounced it: the copy can come after either. The worker reports what it wrote (`laneWrote`)
   * before it hands over any copy of it.
   */
  laneSent(message: Pick<SealedMessage, 'from' | 'to' | 'seq'>, bytes: Uint8Array, carrier: DataLink | null): void {
    if (this.#copies.isAcknowledged(message)) return;
    if (carrier && !this.#copies.wasBounced(message)) this.#copies.keep(carrier, message, bytes);
    else this.#toRelay(message.to, bytes);
  }

  /** A lane brought this message straight to its receiver's worker, which reported it: its sender hears of it over `carrier`. */
  laneReceived(message: Pick<SealedMessage, 'from' | 'to' | 'seq'>, carrier: DataLink | null): void {
    if (carrier === this.relayLink) this.counters.relayIn += 1;
    else this.counters.channelIn += 1;
    if (carrier) this.#acks.later(carrier, message.from, message.to, message.seq);
  }

  /** The lane of `pair` closed: what it carried and is not acknowledged goes through the relay shortly. */
  laneClosed(pair: LanePair): void {
    this.#copies.laneClosed(pair);
  }

  /** Per receiver local task `tid` sent to, the highest seq its host acknowledged (none: not listed). */
  acknowledged(tid: string): { to: string; seq: number }[] {
    const acked: { to: string; seq: number }[] = [];
    for (const to of this.#lastSent.get(tid)?.keys() ?? []) {
      const seq = this.#copies.acknowledgedUpTo(tid, to);
      if (seq > 0) acked.push({ to, seq });
    }
    return acked;
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
    this.#acks.flush();
    this.#copies.senderLeft(tid);
  }

  /** A task arrives from another host: its exit notifications must follow what it sent before it came. */
  taskArrived(tid: string, sent: readonly { to: string; seq: number }[]): void {
    if (sent.length) this.#lastSent.set(tid, new Map(sent.map(({ to, seq }) => [to, seq])));
  }

  /**
   * Envelope bytes from the relay (`link` null), which the coordinator checked, or from a data
   * channel, where they go through only in the name of a task the coordinator places at its peer.
   */
  receive(bytes: Uint8Array, link: DataLink | null): void {
    const decoded = decodeEnvelope(bytes);
    if (!decoded.ok) {
      console.warn(`webpvm: dropped an envelope from ${link ? `peer ${link.remotePeerId}` : 'the relay'}: ${decoded.error.message}`);
      return;
    }
    const { header, buffers } = decoded.value;
    if (header.type === 'part') {
      if (!this.#options.part(header, buffers[0]!, link?.remotePeerId ?? null)) this.counters.forged += 1;
      return;
    }
    if (!link) {
      this.#admit(header, buffers, bytes, null);
      return;
    }
    const author = header.type === 'ack' ? header.by : header.from;
    if (this.#routes.runsAt(author, link.remotePeerId)) {
      this.#admit(header, buffers, bytes, link);
      return;
    }
    this.checkSender(author, link, bytes.byteLength, () => this.#admit(header, buffers, bytes, link), () => {
      if (header.type === 'msg') sendBounce(link, header.from, header.to, header.seq);
    });
  }

  /** A frame in the name of `tid` came over `link`: `admit` runs once the coordinator places `tid` at its peer; else `refuse` (counted). */
  checkSender(tid: string, link: DataLink, bytes: number, admit: () => void, refuse: () => void): void {
    this.#senders.check(tid, link, bytes, admit, () => {
      this.counters.forged += 1;
      refuse();
    });
  }

  #admit(header: EnvelopeHeader, buffers: Uint8Array[], bytes: Uint8Array, link: DataLink | null): void {
    if (header.type === 'ack') {
      const senderHere = this.#lastSent.has(header.of);
      this.#copies.acked(header, senderHere);
      if (senderHere) this.#options.acked?.(header.of, header.by, header.seq);
      else this.#options.ackedElsewhere?.(header.of, header.by, header.seq);
      return;
    }
    if (header.type !== 'msg' || !sameJob(header.from, header.to)) return;
    const inbox = this.#options.inbox;
    if (!inbox.holds(header.to)) {
      if (link) sendBounce(link, header.from, header.to, header.seq);
      else if (!this.#finished.has(header.to)) this.#options.relay(bytes);
      return;
    }
    const sealed = sealDecoded(header, buffers, bytes);
    if (!sealed.ok) {
      console.warn(`webpvm: dropped a message for ${header.to}: ${sealed.message}`);
      return;
    }
    inbox.accept(sealed.message);
    // A relayed message is acknowledged too, through the relay: after a broken connection its
    // sender sends again only what was not (`unacknowledged`), not its whole log.
    this.#acks.later(link ?? this.relayLink, header.from, header.to, header.seq);
    if (link) this.counters.channelIn += 1;
    else this.counters.relayIn += 1;
  }

  /** The other host does not hold `by`: what this page sent it over `link` goes through the relay. */
  bounced(link: DataLink, payload: Uint8Array): void {
    const decoded = decodeEnvelope(payload);
    if (!decoded.ok || decoded.value.header.type !== 'ack') return;
    const { header } = decoded.value;
    this.#routes.notAt(header.by, link.remotePeerId);
    this.#copies.bounced(link, header);
  }

  /**
   * The channel closed or broke: every message it did not see acknowledged goes through the
   * relay, in order. Its host may be gone: where its tasks run is asked again.
   */
  linkBroken(link: DataLink): void {
    this.#acks.linkBroken(link);
    this.#senders.linkBroken(link);
    this.#routes.peerLost(link.remotePeerId);
    this.counters.resentAfterBreak += this.#copies.linkBroken(link);
  }

  /** The page is going away: every message its channels have not seen acknowledged goes through the relay too. */
  departing(): void {
    this.#copies.departing();
  }

  /** The coordinator's answer to `locate`; a task not running anywhere has no route. */
  onRoutes(routes: Route[]): void {
    this.#routes.onRoutes(routes);
    this.#senders.onRoutes(routes);
  }

  stop(): void {
    this.#senders.stop();
    this.#acks.stop();
    this.#copies.stop();
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
    this.#routes.locate(to);
  }
}
