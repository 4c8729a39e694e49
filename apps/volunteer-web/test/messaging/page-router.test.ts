import { encodeEnvelope, sealMessage, unsealMessage, type EnvelopeHeader, type SealedMessage } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FrameKind } from '../../src/host/messaging/channel-frames.ts';
import type { DataLink } from '../../src/host/messaging/data-link.ts';
import { Inboxes, type DeliveredMessage } from '../../src/host/messaging/inboxes.ts';
import { PageRouter } from '../../src/host/messaging/page-router.ts';
import { describeEnvelope, describeHeader } from '../support/envelopes.ts';
import { FakeLink, FakeLinks } from '../support/fake-links.ts';
import { settle } from '../support/timing.ts';

const msg = (from: string, to: string, seq: number, data: unknown = seq): SealedMessage => sealMessage({ from, to, tag: 1, seq, data });
const seqsOf = (headers: EnvelopeHeader[]) => headers.map(describeHeader);

function setup({ p2p = true, held = [] as string[], now = (() => 0) as () => number } = {}) {
  const holds = new Set(held);
  const delivered: { tid: string; messages: DeliveredMessage[] }[] = [];
  const inbox = new Inboxes({
    holds: (tid) => holds.has(tid),
    post: (tid, messages) => {
      delivered.push({ tid, messages: structuredClone(messages) });
      return true;
    },
    delivered: () => undefined,
  });
  const relayed: Uint8Array[] = [];
  const located: string[][] = [];
  const links = p2p ? new FakeLinks() : null;
  const acked: string[] = [];
  const router = new PageRouter({
    inbox,
    relay: (bytes) => relayed.push(bytes),
    locate: (tids) => located.push(tids),
    links,
    now,
    part: () => true,
    acked: (of, by, seq) => acked.push(`${of}>${by}:${seq}`),
  });
  const relayedSeqs = () => relayed.map(describeEnvelope);
  const deliveredSeqs = (tid: string) => delivered.filter((d) => d.tid === tid).flatMap((d) => d.messages.map((m) => `${m.from}:${m.seq}`));
  return { router, inbox, holds, delivered, relayed, located, acked, links: links!, relayedSeqs, deliveredSeqs };
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('PageRouter', () => {
  it('hands a message for a task on this page over in memory, batched per task per turn', async () => {
    const t = setup({ held: ['joba.1', 'joba.2'] });
    const data = { big: new Float64Array([1, 2]) };
    t.router.send(msg('joba.1', 'joba.2', 1, data));
    t.router.send(msg('joba.1', 'joba.2', 2));
    await settle();
    expect(t.delivered).toHaveLength(1);
    const { envelope, ...fields } = t.delivered[0]!.messages[0]!;
    expect({ ...fields, data: unsealMessage(envelope)!.data }).toEqual({ from: 'joba.1', to: 'joba.2', tag: 1, seq: 1, data });
    expect(t.deliveredSeqs('joba.2')).toEqual(['joba.1:1', 'joba.1:2']);
    expect(t.relayed).toEqual([]);
    expect(t.router.counters).toMatchObject({ local: 2, channelOut: 0, relayOut: 0 });
  });

  it('relays while it does not know where the receiver runs, asks, then uses a channel', async () => {
    const t = setup({ held: ['joba.1'] });
    t.router.send(msg('joba.1', 'joba.2', 1));
    t.router.send(msg('joba.1', 'joba.2', 2));
    await settle();
    expect(t.relayedSeqs()).toEqual(['joba.1>joba.2:1', 'joba.1>joba.2:2']);
    expect(t.located).toEqual([['joba.2']]);

    t.router.onRoutes([{ tid: 'joba.2', peerId: 'peer-b' }]);
    expect(t.links.connects).toEqual(['peer-b']);
    // the channel is not open yet: still the relay
    t.router.send(msg('joba.1', 'joba.2', 3));
    expect(t.relayed).toHaveLength(3);

    const link = t.links.opened('peer-b');
    t.router.send(msg('joba.1', 'joba.2', 4));
    expect(link.sent.map((s) => s.kind)).toEqual([FrameKind.envelope]);
    expect(seqsOf(link.sent.map((s) => s.header))).toEqual(['joba.1>joba.2:4']);
    expect(t.router.counters).toMatchObject({ local: 0, channelOut: 1, relayOut: 3 });
    expect(t.router.sentBy('joba.1')).toEqual([{ to: 'joba.2', seq: 4 }]);
  });

  it('with p2p off sends everything that is not local through the relay and never asks for routes', async () => {
    const t = setup({ p2p: false, held: ['joba.1', 'joba.3'] });
    t.router.send(msg('joba.1', 'joba.2', 1));
    t.router.send(msg('joba.1', 'joba.3', 1));
    t.router.onRoutes([{ tid: 'joba.2', peerId: 'peer-b' }]);
    t.router.send(msg('joba.1', 'joba.2', 2));
    await settle();
    expect(t.relayedSeqs()).toEqual(['joba.1>joba.2:1', 'joba.1>joba.2:2']);
    expect(t.located).toEqual([]);
    expect(t.router.counters).toMatchObject({ local: 1, relayOut: 2, channelOut: 0 });
  });

  it('re-sends what a broken channel did not see acknowledged through the relay, before later messages', async () => {
    const t = setup({ held: ['joba.1', 'joba.5'] });
    t.router.onRoutes([{ tid: 'joba.2', peerId: 'peer-b' }]);
    const link = t.links.opened('peer-b');
    for (let seq = 1; seq <= 4; seq++) t.router.send(msg('joba.1', 'joba.2', seq));
    t.router.send(msg('joba.5', 'joba.2', 1));
    t.router.receive(encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 2 }), link);
    expect(t.relayed).toEqual([]);

    t.links.links.delete('peer-b');
    t.router.linkBroken(link);
    t.router.send(msg('joba.1', 'joba.2', 5));
    expect(t.relayedSeqs()).toEqual(['joba.1>joba.2:3', 'joba.1>joba.2:4', 'joba.5>joba.2:1', 'joba.1>joba.2:5']);
    expect(t.router.counters).toMatchObject({ channelOut: 5, resentAfterBreak: 3, relayOut: 4 });
    // the route through the lost host is forgotten: ask again
    await settle();
    expect(t.located).toEqual([['joba.2']]);
  });

  it('relays what it sent over a channel to a host that no longer holds the receiver, and forgets that route', () => {
    const t = setup({ held: ['joba.1'] });
    t.router.onRoutes([
      { tid: 'joba.2', peerId: 'peer-b' },
      { tid: 'joba.3', peerId: 'peer-b' },
    ]);
    const link = t.links.opened('peer-b');
    t.router.send(msg('joba.1', 'joba.2', 1));
    t.router.send(msg('joba.1', 'joba.3', 1));
    t.router.send(msg('joba.1', 'joba.2', 2));
    t.router.bounced(link, encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 1 }));
    expect(t.relayedSeqs()).toEqual(['joba.1>joba.2:1', 'joba.1>joba.2:2']);
    // the second bounce finds nothing left to send
    t.router.bounced(link, encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 2 }));
    t.router.send(msg('joba.1', 'joba.2', 3));
    t.router.send(msg('joba.1', 'joba.3', 2));
    expect(t.relayedSeqs()).toEqual(['joba.1>joba.2:1', 'joba.1>joba.2:2', 'joba.1>joba.2:3']);
    expect(seqsOf(link.sent.map((s) => s.header))).toEqual(['joba.1>joba.2:1', 'joba.1>joba.3:1', 'joba.1>joba.2:2', 'joba.1>joba.3:2']);
  });

  it('delivers what arrives over a channel in order, drops duplicates, and acknowledges after delivery', async () => {
    vi.useFakeTimers();
    const t = setup({ held: ['joba.2'] });
    const link = new FakeLink('peer-a');
    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    t.router.receive(msg('joba.1', 'joba.2', 2).envelope, link);
    t.router.receive(msg('joba.1', 'joba.2', 1).envelope, null);
    t.router.receive(msg('joba.1', 'joba.2', 1).envelope, link);
    t.router.receive(msg('joba.1', 'joba.2', 3).envelope, link);
    await settle();
    expect(t.deliveredSeqs('joba.2')).toEqual(['joba.1:1', 'joba.1:2', 'joba.1:3']);
    expect(t.router.counters).toMatchObject({ channelIn: 3, relayIn: 1 });
    expect(link.sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(20);
    expect(link.sent).toEqual([{ kind: FrameKind.envelope, header: { type: 'ack', of: 'joba.1', by: 'joba.2', seq: 3 } }]);
    await vi.advanceTimersByTimeAsync(100);
    expect(link.sent).toHaveLength(1);
  });

  it('acknowledges at once after 64 messages on one channel', async () => {
    vi.useFakeTimers();
    const t = setup({ held: ['joba.2'] });
    const link = new FakeLink('peer-a');
    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    for (let seq = 1; seq <= 64; seq++) t.router.receive(msg('joba.1', 'joba.2', seq).envelope, link);
    await settle();
    expect(link.sent.map((s) => s.header)).toEqual([{ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 64 }]);
  });

  it('accepts what arrives over a channel or the relay with the very envelope it came in, and drops a message whose data does not decode', async () => {
    vi.useFakeTimers();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const t = setup({ held: ['joba.2'] });
    const accept = vi.spyOn(t.inbox, 'accept');
    const link = new FakeLink('peer-a');
    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    // The data refers to a byte segment the envelope does not have.
    const undecodable = (seq: number) => encodeEnvelope({ type: 'msg', from: 'joba.1', to: 'joba.2', tag: 1, seq, data: { $wpvm: 'Uint8Array', b: 3 }, sizes: [] });
    const overChannel = msg('joba.1', 'joba.2', 1, new Float64Array([1, 2])).envelope;
    const overRelay = msg('joba.1', 'joba.2', 2).envelope;
    t.router.receive(overChannel, link);
    t.router.receive(undecodable(3), link);
    t.router.receive(overRelay, null);
    t.router.receive(undecodable(4), null);

    expect(accept).toHaveBeenCalledTimes(2);
    const [[first], [second]] = accept.mock.calls as [[SealedMessage], [SealedMessage]];
    expect(first).toEqual({ from: 'joba.1', to: 'joba.2', tag: 1, seq: 1, envelope: overChannel });
    expect(first.envelope).toBe(overChannel);
    expect(second.envelope).toBe(overRelay);
    expect(warn.mock.calls.map(([line]) => String(line))).toEqual([
      expect.stringContaining('dropped a message for joba.2'),
      expect.stringContaining('dropped a message for joba.2'),
    ]);
    await settle();
    expect(t.deliveredSeqs('joba.2')).toEqual(['joba.1:1', 'joba.1:2']);
    expect(t.router.counters).toMatchObject({ channelIn: 1, relayIn: 1 });
  });

  it('sends a message for a task it does not hold back where it came from', async () => {
    const t = setup({ held: [] });
    const link = new FakeLink('peer-a');
    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    t.router.receive(msg('joba.1', 'joba.2', 7).envelope, link);
    expect(link.sent).toEqual([{ kind: FrameKind.bounce, header: { type: 'ack', of: 'joba.1', by: 'joba.2', seq: 7 } }]);
    const bytes = msg('joba.1', 'joba.2', 8).envelope;
    t.router.receive(bytes, null);
    expect(t.relayed).toEqual([bytes]);
    // a task that ended well here reads nothing more: no point bouncing
    t.router.taskEnded('joba.3', true);
    t.router.receive(msg('joba.1', 'joba.3', 1).envelope, null);
    expect(t.relayed).toHaveLength(1);
    await settle();
    expect(t.delivered).toEqual([]);
  });

  it('bounces what a task did not read when it leaves before its acknowledgement', async () => {
    vi.useFakeTimers();
    const t = setup({ held: ['joba.2'] });
    const link = new FakeLink('peer-a');
    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    t.router.receive(msg('joba.1', 'joba.2', 1).envelope, link);
    t.holds.delete('joba.2');
    t.inbox.close('joba.2');
    await vi.advanceTimersByTimeAsync(20);
    expect(link.sent).toEqual([{ kind: FrameKind.bounce, header: { type: 'ack', of: 'joba.1', by: 'joba.2', seq: 1 } }]);
  });

  it('acknowledges what a task read as it ends, and bounces nothing', async () => {
    vi.useFakeTimers();
    const t = setup({ held: ['joba.2'] });
    const link = new FakeLink('peer-a');
    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    t.router.receive(msg('joba.1', 'joba.2', 1).envelope, link);
    await settle();
    t.holds.delete('joba.2');
    t.router.taskEnded('joba.2', true);
    t.inbox.close('joba.2');
    await vi.advanceTimersByTimeAsync(100);
    expect(link.sent).toEqual([{ kind: FrameKind.envelope, header: { type: 'ack', of: 'joba.1', by: 'joba.2', seq: 1 } }]);
  });

  it('ignores a message between tasks of different jobs', async () => {
    const t = setup({ held: ['jobb.2'] });
    t.router.receive(msg('joba.1', 'jobb.2', 1).envelope, new FakeLink('peer-a'));
    await settle();
    expect(t.delivered).toEqual([]);
  });
});

describe('PageRouter and frames in another task’s name', () => {
  const dataOf = (t: ReturnType<typeof setup>, tid: string) => t.delivered.filter((d) => d.tid === tid).flatMap((d) => d.messages.map((m) => unsealMessage(m.envelope)!.data));

  it('holds a channel’s message until the coordinator says where its sender runs: delivered from that peer, bounced and counted from any other', async () => {
    vi.useFakeTimers();
    const t = setup({ held: ['joba.2'], now: () => Date.now() });
    const real = new FakeLink('peer-a');
    const forger = new FakeLink('peer-x');
    t.router.receive(msg('joba.1', 'joba.2', 1, 'forged').envelope, forger);
    t.router.receive(msg('joba.1', 'joba.2', 1).envelope, real);
    t.router.receive(msg('joba.1', 'joba.2', 2).envelope, real);
    await settle();
    expect(t.delivered).toEqual([]);
    expect(t.located).toEqual([['joba.1']]);

    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    await settle();
    expect(dataOf(t, 'joba.2')).toEqual([1, 2]);
    expect(forger.sent).toEqual([{ kind: FrameKind.bounce, header: { type: 'ack', of: 'joba.1', by: 'joba.2', seq: 1 } }]);
    expect(t.router.counters).toMatchObject({ channelIn: 2, forged: 1 });

    // known now: the real peer's go straight through, the forger's wait for the next answer, asked a second later
    t.router.receive(msg('joba.1', 'joba.2', 3, 'forged').envelope, forger);
    t.router.receive(msg('joba.1', 'joba.2', 3).envelope, real);
    await settle();
    expect(dataOf(t, 'joba.2')).toEqual([1, 2, 3]);
    expect(t.located).toEqual([['joba.1']]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.located).toEqual([['joba.1'], ['joba.1']]);
    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    expect(t.router.counters).toMatchObject({ channelIn: 3, forged: 2 });
  });

  it('follows the task when it moves: its old peer no longer speaks for it', async () => {
    const t = setup({ held: ['joba.2'] });
    const before = new FakeLink('peer-a');
    const after = new FakeLink('peer-b');
    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    t.router.receive(msg('joba.1', 'joba.2', 1).envelope, before);
    t.router.receive(msg('joba.1', 'joba.2', 2).envelope, after);
    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-b' }]);
    t.router.receive(msg('joba.1', 'joba.2', 3, 'late').envelope, before);
    t.router.onRoutes([{ tid: 'joba.1', peerId: 'peer-b' }]);
    await settle();
    expect(dataOf(t, 'joba.2')).toEqual([1, 2]);
    expect(t.router.counters.forged).toBe(1);
  });

  it('keeps its copies when an acknowledgement comes in the name of a task at another peer', () => {
    const t = setup({ held: ['joba.1'] });
    t.router.onRoutes([{ tid: 'joba.2', peerId: 'peer-b' }]);
    const link = t.links.opened('peer-b');
    t.router.send(msg('joba.1', 'joba.2', 1));
    t.router.send(msg('joba.1', 'joba.2', 2));
    t.router.receive(encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 2 }), new FakeLink('peer-x'));
    t.router.onRoutes([{ tid: 'joba.2', peerId: 'peer-b' }]);
    expect(t.router.counters.forged).toBe(1);
    t.links.links.delete('peer-b');
    t.router.linkBroken(link);
    expect(t.relayedSeqs()).toEqual(['joba.1>joba.2:1', 'joba.1>joba.2:2']);
  });

  it('refuses what waited 10 s with no answer, asking again every second, and drops silently what came from a channel that broke', async () => {
    vi.useFakeTimers();
    const t = setup({ held: ['joba.2'], now: () => Date.now() });
    const link = new FakeLink('peer-a');
    const broken = new FakeLink('peer-b');
    t.router.receive(msg('joba.1', 'joba.2', 1).envelope, link);
    t.router.receive(msg('joba.3', 'joba.2', 1).envelope, broken);
    t.router.linkBroken(broken);
    await vi.advanceTimersByTimeAsync(9_999);
    expect(t.located).toHaveLength(10);
    expect(link.sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(link.sent).toEqual([{ kind: FrameKind.bounce, header: { type: 'ack', of: 'joba.1', by: 'joba.2', seq: 1 } }]);
    t.router.onRoutes([{ tid: 'joba.3', peerId: 'peer-b' }]);
    await settle();
    expect(t.delivered).toEqual([]);
    expect(broken.sent).toEqual([]);
    expect(t.router.counters.forged).toBe(1);
  });
});

describe('PageRouter and lanes', () => {
  /** The worker of `m.from` wrote `m` on a lane, and hands its copy over (as it does when the copy may have to go another way). */
  const laneSent = (router: PageRouter, m: SealedMessage, carrier: DataLink | null) => {
    router.laneWrote(m, m.seq, 1, carrier === router.relayLink);
    router.laneSent(m, m.envelope, carrier);
  };

  it('passes an acknowledgement on to the worker of a sender here, which keeps its lane copies until then', () => {
    const t = setup({ held: ['joba.1'] });
    const carrier = t.links.opened('peer-b');
    t.router.onRoutes([{ tid: 'joba.2', peerId: 'peer-b' }]);
    t.router.laneWrote({ from: 'joba.1', to: 'joba.2' }, 3, 3, false);
    expect(t.router.counters).toMatchObject({ channelOut: 3, laneOut: 3, relayOut: 0 });
    t.router.receive(encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 2 }), carrier);
    // an acknowledgement for a task that never sent from here has no worker to tell
    t.router.receive(encodeEnvelope({ type: 'ack', of: 'joba.7', by: 'joba.2', seq: 1 }), carrier);
    expect(t.acked).toEqual(['joba.1>joba.2:2']);
    expect(t.router.sentBy('joba.1')).toEqual([{ to: 'joba.2', seq: 3 }]);
  });

  it('keeps what a worker wrote on a lane until acknowledged, and relays the rest shortly after the lane closes', () => {
    vi.useFakeTimers();
    const t = setup({ held: ['joba.1'] });
    const carrier = t.links.opened('peer-b');
    t.router.onRoutes([{ tid: 'joba.2', peerId: 'peer-b' }]);
    for (const seq of [1, 2, 3, 4]) laneSent(t.router, msg('joba.1', 'joba.2', seq), carrier);
    t.router.receive(encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 1 }), carrier);
    t.router.laneClosed({ from: 'joba.1', to: 'joba.2' });
    // the receiver's last acknowledgement may come just after its lane closed
    vi.advanceTimersByTime(40);
    t.router.receive(encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 2 }), carrier);
    expect(t.relayed).toEqual([]);
    vi.advanceTimersByTime(20);
    expect(t.relayedSeqs()).toEqual(['joba.1>joba.2:3', 'joba.1>joba.2:4']);
    expect(t.router.counters).toMatchObject({ channelOut: 4, laneOut: 4, relayOut: 2 });
  });

  it('forgets a copy that comes after its acknowledgement, and relays one that comes after its bounce', () => {
    vi.useFakeTimers();
    const t = setup({ held: ['joba.1'] });
    const carrier = t.links.opened('peer-b');
    t.router.onRoutes([{ tid: 'joba.2', peerId: 'peer-b' }]);
    t.router.send(msg('joba.1', 'joba.9', 1));
    t.router.receive(encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 4 }), carrier);
    laneSent(t.router, msg('joba.1', 'joba.2', 4), carrier);
    t.router.bounced(carrier, encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.3', seq: 1 }));
    laneSent(t.router, msg('joba.1', 'joba.3', 1), carrier);
    t.router.laneClosed({ from: 'joba.1', to: 'joba.2' });
    vi.advanceTimersByTime(60);
    expect(t.relayedSeqs()).toEqual(['joba.1>joba.9:1', 'joba.1>joba.3:1']);
  });

  it('relays what a task that left had written on lanes and still is not acknowledged a second later', () => {
    vi.useFakeTimers();
    const t = setup({ held: ['joba.1'] });
    const carrier = t.links.opened('peer-b');
    t.router.onRoutes([{ tid: 'joba.2', peerId: 'peer-b' }]);
    laneSent(t.router, msg('joba.1', 'joba.2', 1), carrier);
    laneSent(t.router, msg('joba.1', 'joba.2', 2), carrier);
    t.router.taskLeft('joba.1');
    t.router.receive(encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 1 }), carrier);
    vi.advanceTimersByTime(999);
    expect(t.relayed).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(t.relayedSeqs()).toEqual(['joba.1>joba.2:2']);
  });

  it('acknowledges over the lane’s page channel what a lane brought to a task of this page', async () => {
    vi.useFakeTimers();
    const t = setup({ held: ['joba.2'] });
    const carrier = t.links.opened('peer-a');
    t.inbox.accept(msg('joba.1', 'joba.2', 1));
    await settle();
    t.inbox.reported('joba.2', [{ n: 2, from: 'joba.1', seq: 2, lane: true }]);
    t.router.laneReceived(msg('joba.1', 'joba.2', 2), carrier);
    vi.advanceTimersByTime(20);
    expect(seqsOf(carrier.sent.map((s) => s.header))).toEqual(['ack joba.1>joba.2:2']);
    expect(t.router.counters.channelIn).toBe(1);
  });

  it('keeps a relay lane’s copies until acknowledged through the relay, counted as relayed, and relays the rest when it closes', () => {
    vi.useFakeTimers();
    const t = setup({ p2p: false, held: ['joba.1'] });
    for (const seq of [1, 2, 3]) laneSent(t.router, msg('joba.1', 'joba.2', seq), t.router.relayLink);
    expect(t.relayed).toEqual([]);
    t.router.receive(encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 2 }), null);
    t.router.laneClosed({ from: 'joba.1', to: 'joba.2' });
    vi.advanceTimersByTime(60);
    expect(t.relayedSeqs()).toEqual(['joba.1>joba.2:3']);
    expect(t.router.counters).toMatchObject({ channelOut: 0, laneOut: 0, relayOut: 4, relayLaneOut: 3 });
  });

  it('acknowledges through the relay what a relay lane brought, and bounces nothing there', async () => {
    vi.useFakeTimers();
    const t = setup({ p2p: false, held: ['joba.2'] });
    t.inbox.accept(msg('joba.1', 'joba.2', 1));
    await settle();
    t.inbox.reported('joba.2', [{ n: 2, from: 'joba.1', seq: 2, lane: true }]);
    t.router.laneReceived(msg('joba.1', 'joba.2', 2), t.router.relayLink);
    // reported by a lane and not handed to the task yet: not acknowledged
    t.router.laneReceived(msg('joba.1', 'joba.2', 3), t.router.relayLink);
    vi.advanceTimersByTime(20);
    expect(t.relayedSeqs()).toEqual(['ack joba.1>joba.2:2']);
    expect(t.router.counters).toMatchObject({ channelIn: 0, relayIn: 2 });
    // the receiver leaves with seq 3 unread: its sender hears it when the coordinator closes the lane
    t.holds.delete('joba.2');
    vi.advanceTimersByTime(20);
    expect(t.relayedSeqs()).toEqual(['ack joba.1>joba.2:2']);
  });

  it('offers a relay lane for each message that goes through the relay', () => {
    const offered: string[] = [];
    const t = setup({ p2p: false, held: ['joba.1'] });
    const router = new PageRouter({
      inbox: t.inbox,
      relay: () => undefined,
      locate: () => undefined,
      links: null,
      relayLanes: { offer: (pair) => offered.push(`${pair.from}>${pair.to}`) },
      part: () => true,
    });
    router.send(msg('joba.1', 'joba.2', 1));
    router.send(msg('joba.1', 'joba.1', 2));
    expect(offered).toEqual(['joba.1>joba.2']);
  });
});
