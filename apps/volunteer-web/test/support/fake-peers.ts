import type { ConnectionEvents, ConnectionLike, DataChannelLike } from '../../src/host/messaging/peer-channel.ts';
import type { CreatePeer, PeerEvents } from '../../src/host/messaging/peer-network.ts';

/** An RTCDataChannel stand-in whose buffer only drains when the test says so. */
export class FakeDataChannel implements DataChannelLike {
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  sent: Uint8Array[] = [];
  #listeners = new Map<string, (() => void)[]>();

  send(data: Uint8Array<ArrayBuffer>): void {
    this.sent.push(data);
    this.bufferedAmount += data.byteLength;
  }

  addEventListener(type: 'bufferedamountlow' | 'close', listener: () => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener]);
  }

  /** The network took bytes off the buffer. */
  drain(toBytes = 0): void {
    const wasAbove = this.bufferedAmount > this.bufferedAmountLowThreshold;
    this.bufferedAmount = toBytes;
    if (wasAbove && toBytes <= this.bufferedAmountLowThreshold) this.fire('bufferedamountlow');
  }

  fire(type: 'bufferedamountlow' | 'close'): void {
    for (const listener of this.#listeners.get(type) ?? []) listener();
  }
}

export class FakeConnection implements ConnectionLike {
  channel: FakeDataChannel | null = null;
  events: ConnectionEvents | null = null;
  closed = false;

  constructor(
    readonly remotePeerId: string,
    readonly serialization = 'raw',
  ) {}

  dataChannel(): DataChannelLike | null {
    return this.channel;
  }

  listen(events: ConnectionEvents): void {
    this.events = events;
  }

  close(): void {
    this.closed = true;
  }

  /** The data channel opened. */
  open(): FakeDataChannel {
    this.channel = new FakeDataChannel();
    this.events?.open();
    return this.channel;
  }
}

export interface FakePeer {
  peerId: string;
  events: PeerEvents;
  outgoing: FakeConnection[];
  destroyed: boolean;
}

export function fakePeers(): { createPeer: CreatePeer; peers: FakePeer[] } {
  const peers: FakePeer[] = [];
  const createPeer: CreatePeer = (peerId, _peerToken, _ice, events) => {
    const peer: FakePeer = { peerId, events, outgoing: [], destroyed: false };
    peers.push(peer);
    return {
      connect: (remotePeerId) => {
        const conn = new FakeConnection(remotePeerId);
        peer.outgoing.push(conn);
        return conn;
      },
      destroy: () => {
        peer.destroyed = true;
      },
    };
  };
  return { createPeer, peers };
}
