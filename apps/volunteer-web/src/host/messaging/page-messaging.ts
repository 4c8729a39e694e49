import type { CoordinatorMessageOf, HostMessage, IceConfig, ImagePartHeader, SealedMessage, TaskRef } from '@webpvm/vm-protocol';
import type { SlotPool } from '../slot-pool.ts';
import { FrameKind } from './channel-frames.ts';
import type { DataLink } from './data-link.ts';
import { Inboxes, type DeliveryReport } from './inboxes.ts';
import { LaneLinks, type LinkFrames } from './lane-links.ts';
import { Lanes, type LanePair } from './lanes.ts';
import { PageRouter, type MessageCounters } from './page-router.ts';
import { PeerNetwork, type CreatePeer } from './peer-network.ts';
import { RelayLaneRequests, relayLaneUrl } from './relay-lane-requests.ts';
import type { Clock } from '../clock.ts';

export interface PageMessagingOptions {
  /** Data channels between hosts; null (`?p2p=off`, or none to make) sends everything between hosts through the relay. */
  createPeer: CreatePeer | null;
  /** The job frames that make links for lanes between hosts (sandbox-frames.ts). */
  links: LinkFrames;
  /** Keep each task's replay log (`?replayLog=off` measures what it costs). */
  keepLog: boolean;
  /** The coordinator socket's URL: relay lanes open on its origin. */
  socketUrl: string;
  /** The workers that run this page's tasks. */
  workers: Pick<SlotPool, 'holds' | 'post' | 'refOf' | 'giveLane'>;
  /** Whether an assignment of `tid` waits for its image here, or for messages its image named (incoming-images.ts, image-refills.ts). */
  waitsForImage(tid: string): boolean;
  /** Every message the restored image of `tid` named came again (Inboxes `filled`). */
  filled(tid: string): void;
  /** To the coordinator: `locate`, `lane-open`, `lane-declined`. */
  send(message: HostMessage): boolean;
  /** Envelope bytes through the coordinator's relay, kept in order while it is away. */
  relay(bytes: Uint8Array): void;
  /** A piece of a migrating task's image, from the coordinator (`fromPeer` null) or another host; false when refused. */
  part(header: ImagePartHeader, bytes: Uint8Array, fromPeer: string | null): boolean;
  /** `count` messages reached the task. */
  countIn(ref: TaskRef, count: number): void;
  /** The host of `by` acknowledged what `of`, which does not run here, sent it up to `seq`. */
  ackedElsewhere(of: string, by: string, seq: number): void;
  /** Something the page shows changed (channels open, messages counted). */
  changed(): void;
  clock: Clock;
}

/**
 * With data channels, a pair goes through the relay this long before it asks for a relay lane:
 * time for a channel to open, whose own lane then takes the pair.
 */
const RELAY_LANE_PATIENCE_MS = 3_000;

/**
 * The page's messaging wired together: each task's inbox (inboxes.ts), the data channels to
 * other hosts (peer-network.ts), the lanes on them (lanes.ts), relay lanes through the coordinator
 * (relay-lane-requests.ts), and the router that chooses among them and keeps delivery exactly
 * once (page-router.ts). Workers write on lanes themselves; the page hears of it from their
 * reports, which come here to be matched with the lane's carrier.
 */
export class PageMessaging {
  readonly inboxes: Inboxes;
  readonly router: PageRouter;
  #network: PeerNetwork | null;
  #lanes: Lanes | null;
  #links: LaneLinks | null;
  #ice: IceConfig = { iceServers: [], iceTransportPolicy: 'all' };
  #relayLanes: RelayLaneRequests;

  constructor(options: PageMessagingOptions) {
    const workers = options.workers;
    this.inboxes = new Inboxes({
      keepLog: options.keepLog,
      // A task waiting for its image is this page's already: its messages wait here too.
      holds: (tid) => workers.holds(tid) || options.waitsForImage(tid),
      post: (tid, messages) => {
        const envelopes = messages.map(workerCopy);
        return workers.post(tid, { type: 'deliver', tid, envelopes }, envelopes.map((e) => e.buffer));
      },
      delivered: (tid, count) => {
        const ref = workers.refOf(tid);
        if (ref) options.countIn(ref, count);
      },
      held: (tid) => workers.post(tid, { type: 'report-now', tid }),
      filled: (tid) => options.filled(tid),
    });
    this.#network = options.createPeer
      ? new PeerNetwork({
          createPeer: options.createPeer,
          clock: options.clock,
          events: {
            frame: (link, frame) => {
              if (frame.kind === FrameKind.envelope) this.router.receive(frame.payload, link);
              else if (frame.kind === FrameKind.bounce) this.router.bounced(link, frame.payload);
              else this.#lanes?.control(link, frame.payload);
            },
            broken: (link) => {
              this.#links?.carrierBroken(link);
              this.#lanes?.carrierBroken(link);
              this.router.linkBroken(link);
            },
            change: () => options.changed(),
          },
        })
      : null;
    const network = this.#network;
    const links = network ? new LaneLinks({ frames: options.links, ice: () => this.#ice, give: (...lane) => workers.giveLane(...lane) }) : null;
    this.#links = links;
    this.#lanes = links
      ? new Lanes({
          carrier: (peerId) => network?.carrier(peerId) ?? null,
          make: (carrier, id, gift, made) => links.make(carrier, id, gift, made),
          link: (carrier, control) => links.control(carrier, control),
          // The worker closes its end and reports it (laneClosed below); without a worker, what it wrote goes now.
          gone: (pair) => {
            if (!workers.post(pair.from, { type: 'lane-close', tid: pair.from, to: pair.to })) this.router.laneClosed(pair);
          },
          checkSender: (tid, carrier, admit, refuse) => this.router.checkSender(tid, carrier, 0, admit, refuse),
        })
      : null;
    this.#relayLanes = new RelayLaneRequests({
      ask: (pair) => options.send({ type: 'lane-open', ...pair }),
      decline: (token) => options.send({ type: 'lane-declined', token }),
      giveOut: (pair, token) => workers.post(pair.from, { type: 'relay-lane-out', tid: pair.from, to: pair.to, url: relayLaneUrl(options.socketUrl, token) }),
      giveIn: (pair, token) => workers.post(pair.to, { type: 'relay-lane-in', tid: pair.to, from: pair.from, url: relayLaneUrl(options.socketUrl, token) }),
      patienceMs: network ? RELAY_LANE_PATIENCE_MS : 0,
    });
    this.router = new PageRouter({
      inbox: this.inboxes,
      relay: (bytes) => options.relay(bytes),
      locate: (tids) => options.send({ type: 'locate', tids }),
      links: network,
      lanes: this.#lanes,
      relayLanes: this.#relayLanes,
      part: (header, bytes, fromPeer) => options.part(header, bytes, fromPeer),
      acked: (of, by, seq) => workers.post(of, { type: 'lane-acked', tid: of, to: by, seq }),
      ackedElsewhere: (of, by, seq) => options.ackedElsewhere(of, by, seq),
      clock: options.clock,
    });
  }

  /** Whether this page has data channels at all. */
  get hasChannels(): boolean {
    return this.#network !== null;
  }

  /** Task messages by the way they went, and the data channels open now. */
  get counters(): MessageCounters & { channelsOpen: number } {
    return { ...this.router.counters, channelsOpen: this.#network?.openCount ?? 0 };
  }

  /** This page's PeerJS id, once welcomed with data channels on. */
  get peerId(): string | null {
    return this.#network?.peerId ?? null;
  }

  /** The open data channel to that host, or null. */
  channel(peerId: string): DataLink | null {
    return this.#network?.open(peerId) ?? null;
  }

  /** A welcome: the peer id may be new, and every relay lane closed with the last connection. */
  welcome({ peerId, peerToken, iceServers, iceTransportPolicy }: CoordinatorMessageOf<'welcome'>): void {
    this.#ice = { iceServers, iceTransportPolicy };
    this.#network?.setIdentity(peerId, peerToken, this.#ice);
    this.#relayLanes.linkLost();
  }

  peerGone(peerId: string): void {
    this.#network?.gone(peerId);
  }

  laneGranted(grant: CoordinatorMessageOf<'lane'>): void {
    this.#relayLanes.granted(grant);
  }

  laneRefused(pair: LanePair): void {
    this.#relayLanes.refused(pair);
  }

  /** The worker of `pair.from` wrote `count` messages on its lane to `pair.to`, the last one `seq`. */
  laneWrote(pair: LanePair, seq: number, count: number): void {
    this.router.laneWrote(pair, seq, count, this.#relayLanes.sends(pair));
  }

  /** The worker of `message.from` hands over its copy of what it wrote on its lane: kept under the lane's carrier. */
  laneSent(message: Pick<SealedMessage, 'from' | 'to' | 'seq'>, bytes: Uint8Array): void {
    const carrier = this.#relayLanes.sends(message) ? this.router.relayLink : (this.#lanes?.carrierOf(message) ?? null);
    this.router.laneSent(message, bytes, carrier);
  }

  /** The worker of `tid` reports what it handed its task; returns how many of those came on lanes. */
  delivered(tid: string, entries: DeliveryReport[]): number {
    const fromLanes = this.inboxes.reported(tid, entries);
    for (const message of fromLanes) {
      const pair = { from: message.from, to: tid };
      const carrier = this.#relayLanes.receives(pair) ? this.router.relayLink : (this.#lanes?.carrierIn(pair) ?? null);
      this.router.laneReceived(message, carrier);
    }
    return fromLanes.length;
  }

  /** The worker of `pair.from` saw its lane to `pair.to` close. */
  laneClosed(pair: LanePair): void {
    this.#lanes?.closed(pair);
    this.#relayLanes.closed(pair);
    this.router.laneClosed(pair);
  }

  /** Task `tid` ended here or left: its lanes, both ways, close with it. */
  lanesGone(tid: string): void {
    this.#lanes?.taskGone(tid);
    this.#relayLanes.taskGone(tid);
  }

  /**
   * The page is going away: what its channels have not seen acknowledged goes through the relay,
   * and closing the channels tells the other hosts at once, so what they sent here unacknowledged
   * goes through the relay too.
   */
  departing(): void {
    this.router.departing();
    this.#network?.stop();
  }

  stop(): void {
    this.#network?.stop();
    this.router.stop();
  }
}

/**
 * The worker's own copy of a message's envelope, to transfer: this page keeps the message for its
 * replay log, and structured clone would copy the whole buffer a view lies in (a data channel's
 * frame, for one). An image's envelopes are copied out of it as it is decoded: a task's start
 * clones them as they are.
 */
function workerCopy(message: SealedMessage): Uint8Array<ArrayBuffer> {
  return message.envelope.slice();
}
