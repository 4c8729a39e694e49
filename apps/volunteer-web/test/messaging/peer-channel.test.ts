import { afterEach, describe, expect, it, vi } from 'vitest';
import { FrameKind, Reassembler, type Frame } from '../../src/host/messaging/channel-frames.ts';
import { PeerChannel } from '../../src/host/messaging/peer-channel.ts';
import { PeerNetwork } from '../../src/host/messaging/peer-network.ts';
import { FakeConnection, fakePeers } from '../support/fake-peers.ts';
import { sameBytes } from '../support/bytes.ts';

afterEach(() => vi.useRealTimers());

function channel(remote = 'peer-b') {
  const conn = new FakeConnection(remote);
  const frames: Frame[] = [];
  let broken = 0;
  const ch = new PeerChannel(conn, true, { open: () => undefined, frame: (_c, f) => frames.push(f), broken: () => broken++ }, 0);
  return { conn, ch, frames, broken: () => broken };
}

describe('PeerChannel', () => {
  it('holds payloads until it opens, then paces large ones on bufferedAmount', () => {
    const { conn, ch } = channel();
    const payload = Uint8Array.from({ length: 10 * 1024 * 1024 }, (_, i) => i % 251);
    ch.send(FrameKind.envelope, new Uint8Array([1, 2, 3]));
    ch.send(FrameKind.envelope, payload);
    const dc = conn.open();
    expect(dc.bufferedAmountLowThreshold).toBe(1024 * 1024);
    // writing stops once more than 4 MiB wait in the channel
    expect(dc.bufferedAmount).toBeGreaterThan(4 * 1024 * 1024);
    expect(dc.bufferedAmount).toBeLessThan(4 * 1024 * 1024 + 70 * 1024);
    const before = dc.sent.length;
    dc.drain(2 * 1024 * 1024);
    expect(dc.sent.length).toBe(before);
    while (dc.bufferedAmount > 0) dc.drain(0);
    expect(Math.max(...dc.sent.map((f) => f.byteLength))).toBeLessThan(256 * 1024);

    const reassembler = new Reassembler();
    const out = dc.sent.map((f) => reassembler.accept(f)).filter((f) => f !== null);
    expect(out.map((f) => f.payload.byteLength)).toEqual([3, payload.byteLength]);
    expect(sameBytes(out[1]!.payload, payload)).toBe(true);
  });

  it('hands over the payloads it receives, reassembled', () => {
    const { conn, frames } = channel();
    conn.open();
    const other = channel('peer-a');
    const otherDc = other.conn.open();
    other.ch.send(FrameKind.bounce, new Uint8Array(100_000).fill(7));
    for (const f of otherDc.sent) conn.events!.data(f.slice().buffer);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.kind).toBe(FrameKind.bounce);
    expect(frames[0]!.payload.byteLength).toBe(100_000);
  });

  it('breaks when it does not open within 3 s', () => {
    vi.useFakeTimers();
    const { conn, broken } = channel();
    vi.advanceTimersByTime(2999);
    expect(broken()).toBe(0);
    vi.advanceTimersByTime(1);
    expect(broken()).toBe(1);
    expect(conn.closed).toBe(true);
  });

  it.each([
    ['ICE fails', (c: FakeConnection) => c.events!.iceState('failed')],
    ['ICE disconnects', (c: FakeConnection) => c.events!.iceState('disconnected')],
    ['the data channel closes', (c: FakeConnection) => c.channel!.fire('close')],
    ['PeerJS closes', (c: FakeConnection) => c.events!.close()],
    ['garbage arrives', (c: FakeConnection) => c.events!.data(new Uint8Array([9, 9, 9]).buffer)],
    ['text arrives', (c: FakeConnection) => c.events!.data('hello')],
  ])('breaks once when %s', (_what, trigger) => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const { conn, ch, broken } = channel();
    conn.open();
    trigger(conn);
    trigger(conn);
    expect(broken()).toBe(1);
    expect(ch.isOpen).toBe(false);
    expect(conn.closed).toBe(true);
    warn.mockRestore();
  });

  it('breaks when writing throws', () => {
    const { conn, ch, broken } = channel();
    const dc = conn.open();
    dc.send = () => {
      throw new Error('send queue is full');
    };
    ch.send(FrameKind.envelope, new Uint8Array(1));
    expect(broken()).toBe(1);
  });
});

function network(peerId: string, maxChannels = 8) {
  let now = 0;
  const { createPeer, peers } = fakePeers();
  const broken: string[] = [];
  const net = new PeerNetwork({
    createPeer,
    maxChannels,
    now: () => now,
    events: { frame: () => undefined, broken: (link) => broken.push(link.remotePeerId), change: () => undefined },
  });
  net.setIdentity(peerId, 'token', { iceServers: [], iceTransportPolicy: 'all' });
  return { net, peers, broken, advance: (ms: number) => (now += ms), peer: () => peers.at(-1)! };
}

describe('PeerNetwork', () => {
  it('opens one channel per peer, lazily, and offers it once open', () => {
    const t = network('peer-a');
    expect(t.net.open('peer-b')).toBeNull();
    t.net.connect('peer-b');
    t.net.connect('peer-b');
    t.net.connect('peer-a');
    expect(t.peer().outgoing.map((c) => c.remotePeerId)).toEqual(['peer-b']);
    expect(t.net.open('peer-b')).toBeNull();
    t.peer().outgoing[0]!.open();
    expect(t.net.open('peer-b')?.remotePeerId).toBe('peer-b');
    expect(t.net.openCount).toBe(1);
  });

  it('keeps the connection opened by the smaller peer id when both sides connect at once', () => {
    const small = network('peer-a');
    small.net.connect('peer-b');
    const incoming = new FakeConnection('peer-b');
    small.peer().events.connection(incoming);
    expect(incoming.closed).toBe(true);
    expect(small.peer().outgoing[0]!.closed).toBe(false);

    const large = network('peer-c');
    large.net.connect('peer-b');
    const fromSmaller = new FakeConnection('peer-b');
    large.peer().events.connection(fromSmaller);
    expect(large.peer().outgoing[0]!.closed).toBe(true);
    expect(large.broken).toEqual(['peer-b']);
    expect(fromSmaller.closed).toBe(false);
    fromSmaller.open();
    expect(large.net.open('peer-b')).not.toBeNull();
  });

  it('refuses an incoming connection that does not use raw serialization', () => {
    const t = network('peer-a');
    const conn = new FakeConnection('peer-b', 'binary');
    t.peer().events.connection(conn);
    expect(conn.closed).toBe(true);
    expect(t.net.openCount).toBe(0);
  });

  it('closes the least recently used channel past its cap', () => {
    const t = network('peer-a', 2);
    for (const remote of ['peer-b', 'peer-c']) {
      t.net.connect(remote);
      t.peer().outgoing.at(-1)!.open();
      t.advance(10);
    }
    t.net.open('peer-b');
    t.net.connect('peer-d');
    expect(t.broken).toEqual(['peer-c']);
    expect(t.net.open('peer-b')).not.toBeNull();
    // closed to make room, not failed: it may be opened again at once
    t.net.connect('peer-c');
    expect(t.peer().outgoing.map((c) => c.remotePeerId)).toEqual(['peer-b', 'peer-c', 'peer-d', 'peer-c']);
  });

  it('leaves a peer it could not reach alone for a while', () => {
    vi.useFakeTimers();
    const t = network('peer-a');
    t.net.connect('peer-b');
    vi.advanceTimersByTime(3000);
    expect(t.broken).toEqual(['peer-b']);
    t.net.connect('peer-b');
    expect(t.peer().outgoing).toHaveLength(1);
    t.advance(10_000);
    t.net.connect('peer-b');
    expect(t.peer().outgoing).toHaveLength(2);
  });

  it('gives up waiting for a peer the signalling server does not know', () => {
    const t = network('peer-a');
    t.net.connect('peer-b');
    t.peer().events.error('peer-unavailable', 'Could not connect to peer peer-b');
    expect(t.broken).toEqual(['peer-b']);
  });

  it('makes a new peer when the peer id changes, closing the old channels', () => {
    const t = network('peer-a');
    t.net.connect('peer-b');
    t.peer().outgoing[0]!.open();
    t.net.setIdentity('peer-a', 'token', { iceServers: [], iceTransportPolicy: 'all' });
    expect(t.peers).toHaveLength(1);
    t.net.setIdentity('peer-a2', 'token', { iceServers: [], iceTransportPolicy: 'all' });
    expect(t.peers).toHaveLength(2);
    expect(t.peers[0]!.destroyed).toBe(true);
    expect(t.broken).toEqual(['peer-b']);
    expect(t.net.openCount).toBe(0);
  });
});
