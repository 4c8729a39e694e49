import type { IceConfig } from '@webpvm/vm-protocol';
import type { Frame } from './channel-frames.ts';
import type { DataLink, DataLinks } from './data-link.ts';
import type { LaneCarrier } from './lanes.ts';
import { OPEN_TIMEOUT_MS, PeerChannel, type ConnectionLike } from './peer-channel.ts';
import type { Clock } from '../clock.ts';

/** What the network needs of a PeerJS Peer (peerjs-peer.ts adapts the real one). */
export interface PeerLike {
  /** A `raw`, reliable data connection to that peer, or null when the peer cannot connect now. */
  connect(remotePeerId: string): ConnectionLike | null;
  destroy(): void;
}

export interface PeerEvents {
  connection(conn: ConnectionLike): void;
  error(type: string, message: string): void;
}

/** `peerToken` is the one the coordinator issued with `peerId`: its PeerServer takes the id with it only. */
export type CreatePeer = (peerId: string, peerToken: string, ice: IceConfig, events: PeerEvents) => PeerLike;

export interface NetworkEvents {
  frame(link: LaneCarrier, frame: Frame): void;
  broken(link: LaneCarrier): void;
  change(): void;
}

export interface PeerNetworkOptions {
  createPeer: CreatePeer;
  events: NetworkEvents;
  maxChannels?: number;
  openTimeoutMs?: number;
  now?: () => number;
  /** A channel that does not open in time closes, on a hidden page too (clock.ts). */
  clock?: Clock;
}

const MAX_CHANNELS = 8;
/** After a channel to a peer failed to open, that peer is left alone for this long: the relay carries its messages. */
const RETRY_AFTER_MS = 10_000;

/**
 * This page's data channels: its PeerJS peer (the id comes with every `welcome`), one channel
 * per remote host, opened lazily, at most `maxChannels` at once (the least recently used one
 * closes to make room). When both sides connect at once, the connection opened by the smaller
 * peer id wins on both sides.
 */
export class PeerNetwork implements DataLinks {
  #options: PeerNetworkOptions;
  #now: () => number;
  #peer: PeerLike | null = null;
  #peerId: string | null = null;
  #channels = new Map<string, PeerChannel>();
  #failedAt = new Map<string, number>();

  constructor(options: PeerNetworkOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** This page's id on the coordinator's PeerServer, while it has one. */
  get peerId(): string | null {
    return this.#peerId;
  }

  get openCount(): number {
    let open = 0;
    for (const channel of this.#channels.values()) if (channel.isOpen) open++;
    return open;
  }

  /** Called on every welcome: a new peer id (a new connection to the coordinator) means a new peer. */
  setIdentity(peerId: string, peerToken: string, ice: IceConfig): void {
    if (peerId === this.#peerId && this.#peer) return;
    this.stop();
    this.#peerId = peerId;
    this.#peer = this.#options.createPeer(peerId, peerToken, ice, {
      connection: (conn) => this.#onIncoming(conn),
      error: (type, message) => this.#onPeerError(type, message),
    });
  }

  open(peerId: string): DataLink | null {
    const channel = this.#channels.get(peerId);
    if (!channel?.isOpen) return null;
    channel.lastUsed = this.#now();
    return channel;
  }

  /** The open channel to that peer, for lanes to ride on. */
  carrier(peerId: string): PeerChannel | null {
    const channel = this.#channels.get(peerId);
    return channel?.isOpen ? channel : null;
  }

  connect(peerId: string): void {
    if (!this.#peer || peerId === this.#peerId || this.#channels.has(peerId)) return;
    const failed = this.#failedAt.get(peerId);
    if (failed !== undefined && this.#now() - failed < RETRY_AFTER_MS) return;
    const conn = this.#peer.connect(peerId);
    if (conn) this.#add(conn, true);
  }

  /** The coordinator saw that peer leave: its channel is dead, whatever WebRTC says yet. */
  gone(peerId: string): void {
    this.#channels.get(peerId)?.close();
  }

  stop(): void {
    for (const channel of [...this.#channels.values()]) this.#retire(channel);
    this.#peer?.destroy();
    this.#peer = null;
    this.#peerId = null;
  }

  #onIncoming(conn: ConnectionLike): void {
    const existing = this.#channels.get(conn.remotePeerId);
    if (conn.serialization !== 'raw' || (existing?.outgoing && this.#peerId !== null && this.#peerId < conn.remotePeerId)) {
      conn.close();
      return;
    }
    if (existing) this.#retire(existing);
    this.#add(conn, false);
  }

  #add(conn: ConnectionLike, outgoing: boolean): void {
    const max = this.#options.maxChannels ?? MAX_CHANNELS;
    while (this.#channels.size >= max) {
      this.#retire([...this.#channels.values()].reduce((a, b) => (b.lastUsed < a.lastUsed ? b : a)));
    }
    const channel = new PeerChannel(
      conn,
      outgoing,
      {
        open: () => this.#options.events.change(),
        frame: (c, frame) => {
          c.lastUsed = this.#now();
          this.#options.events.frame(c, frame);
        },
        broken: (c) => this.#onBroken(c),
      },
      this.#now(),
      this.#options.openTimeoutMs ?? OPEN_TIMEOUT_MS,
      this.#options.clock,
    );
    this.#channels.set(conn.remotePeerId, channel);
  }

  /** Closed by this page (to make room, or for the other side's connection): not a failure. */
  #retire(channel: PeerChannel): void {
    this.#channels.delete(channel.remotePeerId);
    channel.close();
  }

  #onBroken(channel: PeerChannel): void {
    if (this.#channels.get(channel.remotePeerId) === channel) {
      this.#channels.delete(channel.remotePeerId);
      if (!channel.everOpened && channel.outgoing) this.#failedAt.set(channel.remotePeerId, this.#now());
    }
    this.#options.events.broken(channel);
    this.#options.events.change();
  }

  #onPeerError(type: string, message: string): void {
    // PeerJS names the unreachable peer only in the message: stop waiting for its channel.
    if (type === 'peer-unavailable') {
      for (const channel of [...this.#channels.values()]) {
        if (!channel.isOpen && message.endsWith(channel.remotePeerId)) channel.close();
      }
      return;
    }
    console.warn(`webpvm: data channels: ${type}: ${message}`);
  }
}
