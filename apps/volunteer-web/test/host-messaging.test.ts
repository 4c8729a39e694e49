import { encodeEnvelope, encodeMessage, unsealMessage, type ToWorker } from '@webpvm/vm-protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FrameKind, Reassembler, toFrames } from '../src/host/messaging/channel-frames.ts';
import { assignment } from './support/assignments.ts';
import { describeEnvelope } from './support/envelopes.ts';
import { fakePeers } from './support/fake-peers.ts';
import { laneControlBytes, readLaneControl } from './support/lane-control.ts';
import { startHost, stopHosts } from './support/start-host.ts';
import { settle } from './support/timing.ts';
import { startsOf } from './support/fake-workers.ts';

const laneFrame = (control: unknown) => toFrames(FrameKind.lane, laneControlBytes(control), 0)[0]!;
const send = (from: string, to: string, seq: number, data: unknown = seq) => ({ type: 'send', tid: from, envelope: encodeMessage({ from, to, tag: 1, seq, data }) });
/** The `deliver`s a worker was posted, their envelopes decoded as its runtime decodes them. */
const deliveries = (received: ToWorker[]) =>
  received.flatMap((m) => (m.type === 'deliver' ? [{ tid: m.tid, messages: m.envelopes.map(unsealMessage) }] : []));

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  stopHosts();
  vi.useRealTimers();
});

describe('HostRuntime messaging', () => {
  it('sends a task request to the coordinator, kept while offline, and hands the reply to the worker', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    host.socket().close();
    host.workers[0]!.emit({ type: 'request', tid: 'joba.0', requestId: 1, op: { kind: 'join', group: 'g' } });
    await vi.advanceTimersByTimeAsync(250);
    await host.connect();
    expect(host.socket().sentOfType('request')).toEqual([
      { type: 'request', tid: 'joba.0', attempt: 1, requestId: 1, op: { kind: 'join', group: 'g' } },
    ]);
    host.socket().receive({ type: 'reply', tid: 'joba.0', requestId: 1, ok: true, value: 0 });
    expect(host.workers[0]!.received.at(-1)).toEqual({ type: 'reply', tid: 'joba.0', requestId: 1, ok: true, value: 0 });
  });

  it('starts a spawned task at once past the slots, and passes messages between tasks of the page in memory', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0), assignment('joba', 1)] });
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 2, { parent: 'joba.0' })] });
    expect(host.runtime.snapshot().running).toHaveLength(3);
    host.workers[0]!.emit(send('joba.0', 'joba.2', 1, { x: new Float64Array([0.5]) }));
    host.workers[0]!.emit(send('joba.0', 'joba.2', 2));
    await settle();
    expect(deliveries(host.workers[2]!.received)).toEqual([
      {
        tid: 'joba.2',
        messages: [
          { from: 'joba.0', to: 'joba.2', tag: 1, seq: 1, data: { x: new Float64Array([0.5]) } },
          { from: 'joba.0', to: 'joba.2', tag: 1, seq: 2, data: 2 },
        ],
      },
    ]);
    expect(host.socket().binary).toEqual([]);
    expect(host.runtime.snapshot().messages).toEqual({
      local: 2,
      channelOut: 0,
      laneOut: 0,
      channelIn: 0,
      relayOut: 0,
      relayLaneOut: 0,
      relayIn: 0,
      channelsOpen: 0,
      resentAfterBreak: 0,
      forged: 0,
    });

    host.workers[0]!.emit({ type: 'done', tid: 'joba.0', ok: true, value: 'x' });
    await vi.advanceTimersByTimeAsync(10);
    await settle();
    expect(host.socket().sentOfType('results')[0]!.items).toEqual([{ tid: 'joba.0', attempt: 1, ok: true, value: 'x', sent: [{ to: 'joba.2', seq: 2 }] }]);
    // a task's final counts go as it ends; the others' with the next batch
    expect(host.socket().sentOfType('progress')).toEqual([
      { type: 'progress', items: [{ tid: 'joba.0', attempt: 1, fraction: 0, messagesOut: 2, messagesIn: 0 }] },
    ]);
    await vi.advanceTimersByTimeAsync(500);
    expect(host.socket().sentOfType('progress').slice(1)).toEqual([
      { type: 'progress', items: [{ tid: 'joba.2', attempt: 1, fraction: 0, messagesOut: 0, messagesIn: 2 }] },
    ]);
  });

  it('relays a message for a task elsewhere, delivers what the relay brings, and holds messages until the task starts', async () => {
    const host = await startHost({ p2p: false });
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0), assignment('joba', 1), assignment('joba', 3)] });
    host.workers[0]!.emit(send('joba.0', 'joba.7', 1));
    await settle();
    expect(host.socket().binary.map(describeEnvelope)).toEqual(['joba.0>joba.7:1']);
    expect(host.socket().sentOfType('locate')).toEqual([]);

    host.socket().receiveBinary(encodeMessage({ from: 'joba.7', to: 'joba.0', tag: 4, seq: 1, data: 'hi' }));
    host.socket().receiveBinary(encodeMessage({ from: 'joba.7', to: 'joba.3', tag: 4, seq: 1, data: 'later' }));
    await settle();
    expect(deliveries(host.workers[0]!.received).at(-1)).toEqual({ tid: 'joba.0', messages: [{ from: 'joba.7', to: 'joba.0', tag: 4, seq: 1, data: 'hi' }] });
    // joba.3 waits for a slot, and its message waits with it
    host.workers[1]!.emit({ type: 'done', tid: 'joba.1', ok: true, value: 1 });
    await settle();
    expect(host.workers[1]!.received.slice(-2).map((m) => m.type)).toEqual(['starts', 'deliver']);
    expect(host.runtime.snapshot().messages).toMatchObject({ relayOut: 1, relayIn: 2 });
  });

  it('acknowledges relayed messages through the relay, and after a reconnect has each task send again only what was not acknowledged', async () => {
    const host = await startHost({ p2p: false });
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    host.workers[0]!.emit(send('joba.0', 'joba.7', 1));
    host.workers[0]!.emit(send('joba.0', 'joba.7', 2));
    host.workers[0]!.emit(send('joba.0', 'joba.8', 1));
    host.socket().receiveBinary(encodeMessage({ from: 'joba.7', to: 'joba.0', tag: 4, seq: 1, data: 'hi' }));
    await vi.advanceTimersByTimeAsync(50);
    expect(host.socket().binary.map(describeEnvelope)).toEqual(['joba.0>joba.7:1', 'joba.0>joba.7:2', 'joba.0>joba.8:1', 'ack joba.7>joba.0:1']);
    // joba.7's host had the first
    host.socket().receiveBinary(encodeEnvelope({ type: 'ack', of: 'joba.0', by: 'joba.7', seq: 1 }));
    host.socket().close();
    await vi.advanceTimersByTimeAsync(250);
    await host.connect();
    expect(host.workers[0]!.received.filter((m) => m.type === 'resend')).toEqual([{ type: 'resend', tid: 'joba.0', acked: [{ to: 'joba.7', seq: 1 }] }]);
    // joba.8's host came back after its own connection broke: only what it did not acknowledge
    host.socket().receive({ type: 'reconnected', tids: ['joba.8'] });
    expect(host.workers[0]!.received.filter((m) => m.type === 'resend').at(-1)).toEqual({ type: 'resend', tid: 'joba.0', to: 'joba.8', acked: [{ to: 'joba.7', seq: 1 }] });
    // joba.7 restarted from its checkpoint after a crash: everything
    host.socket().receive({ type: 'restarted', tids: ['joba.7'] });
    expect(host.workers[0]!.received.filter((m) => m.type === 'resend').at(-1)).toEqual({ type: 'resend', tid: 'joba.0', to: 'joba.7', acked: [] });
    // the coordinator restarted (another process welcomes it): it lost what it held, and restarts tasks from older points: everything
    host.socket().close();
    await vi.advanceTimersByTimeAsync(250);
    await host.connect('b2');
    expect(host.workers[0]!.received.filter((m) => m.type === 'resend').at(-1)).toEqual({ type: 'resend', tid: 'joba.0', acked: [] });
  });

  it('keeps what an ended task\'s log held: sent again after a reconnect, when a receiver\'s host reconnects or restarts it, until covered or its job ends', async () => {
    const host = await startHost({ p2p: false });
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 1)] });
    host.workers[0]!.emit(send('joba.1', 'joba.0', 1));
    host.workers[0]!.emit(send('joba.1', 'joba.0', 2));
    host.workers[0]!.emit(send('joba.1', 'joba.2', 1));
    await settle();
    // joba.2's host has its message before the task ends
    host.socket().receiveBinary(encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.2', seq: 1 }));
    host.workers[0]!.emit({ type: 'ended-log', tid: 'joba.1', envelopes: [1, 2].map((seq) => encodeMessage({ from: 'joba.1', to: 'joba.0', tag: 1, seq, data: seq })) });
    host.workers[0]!.emit({ type: 'ended-log', tid: 'joba.1', envelopes: [encodeMessage({ from: 'joba.1', to: 'joba.2', tag: 1, seq: 1, data: 1 })] });
    host.workers[0]!.emit({ type: 'done', tid: 'joba.1', ok: true, value: null });
    await settle();
    expect(host.socket().binary.map(describeEnvelope)).toEqual(['joba.1>joba.0:1', 'joba.1>joba.0:2', 'joba.1>joba.2:1']);
    // joba.0's host had the first when the connection broke: the rest goes again after the welcome, and the page names the task
    host.socket().receiveBinary(encodeEnvelope({ type: 'ack', of: 'joba.1', by: 'joba.0', seq: 1 }));
    host.socket().close();
    await vi.advanceTimersByTimeAsync(250);
    await host.connect();
    await vi.advanceTimersByTimeAsync(200);
    expect(host.socket().binary.map(describeEnvelope)).toEqual(['joba.1>joba.0:2']);
    expect(host.socket().sentOfType('logs-kept')).toEqual([{ type: 'logs-kept', tids: ['joba.1'] }]);

    // joba.2's host reconnected: it acknowledged all; joba.0's reconnected: its second; joba.2 restarted from an older checkpoint: all of it
    host.socket().receive({ type: 'reconnected', tids: ['joba.2', 'joba.0'] });
    host.socket().receive({ type: 'restarted', tids: ['joba.2'] });
    await vi.advanceTimersByTimeAsync(200);
    expect(host.socket().binary.slice(1).map(describeEnvelope)).toEqual(['joba.1>joba.0:2', 'joba.1>joba.2:1']);
    // a checkpoint of joba.0 covers its first message, then it restarts from it
    host.socket().receive({ type: 'covered', items: [{ tid: 'joba.1', to: 'joba.0', seq: 1 }] });
    host.socket().receive({ type: 'restarted', tids: ['joba.0'] });
    await vi.advanceTimersByTimeAsync(200);
    expect(host.socket().binary.slice(3).map(describeEnvelope)).toEqual(['joba.1>joba.0:2']);

    // the job ended: nothing of it is kept, nor named after the next welcome
    host.socket().receive({ type: 'forget-logs', jobs: ['joba'] });
    host.socket().receive({ type: 'restarted', tids: ['joba.0', 'joba.2'] });
    host.socket().close();
    await vi.advanceTimersByTimeAsync(250);
    await host.connect();
    await vi.advanceTimersByTimeAsync(200);
    expect(host.socket().sentOfType('logs-kept')).toEqual([]);
    expect(host.socket().binary).toEqual([]);
  });

  it('sends a task moved with named messages what its running and ended tasks sent it after the seqs asked (send-again)', async () => {
    const host = await startHost({ p2p: false });
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 1), assignment('joba', 2)] });
    await settle();
    host.workers[0]!.emit({ type: 'ended-log', tid: 'joba.1', envelopes: [1, 2, 3].map((seq) => encodeMessage({ from: 'joba.1', to: 'joba.0', tag: 1, seq, data: seq })) });
    host.workers[0]!.emit({ type: 'done', tid: 'joba.1', ok: true, value: null });
    await vi.advanceTimersByTimeAsync(200);
    const before = host.socket().binary.length;
    host.socket().receive({ type: 'send-again', to: 'joba.0', from: [{ tid: 'joba.1', after: 1 }, { tid: 'joba.2', after: 5 }] });
    await vi.advanceTimersByTimeAsync(200);
    expect(host.socket().binary.slice(before).map(describeEnvelope)).toEqual(['joba.1>joba.0:2', 'joba.1>joba.0:3']);
    const worker = host.workers.find((w) => w.received.some((m) => m.type === 'starts' && startsOf(m).some((t) => t.task.tid === 'joba.2')))!;
    expect(worker.received.filter((m) => m.type === 'resend')).toEqual([{ type: 'resend', tid: 'joba.2', to: 'joba.0', acked: [{ to: 'joba.0', seq: 5 }] }]);
  });

  it('uses a data channel once it knows where the receiver runs, and relays what the channel lost when it breaks', async () => {
    const { createPeer, peers } = fakePeers();
    const host = await startHost({ createPeer });
    await host.connect();
    expect(peers.map((p) => p.peerId)).toEqual(['h1-peer']);
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });

    host.workers[0]!.emit(send('joba.0', 'joba.5', 1));
    await settle();
    expect(host.socket().sentOfType('locate')).toEqual([{ type: 'locate', tids: ['joba.5'] }]);
    host.socket().receive({ type: 'routes', routes: [{ tid: 'joba.5', hostId: 'h2', peerId: 'h2-peer' }] });
    const conn = peers[0]!.outgoing[0]!;
    expect(conn.remotePeerId).toBe('h2-peer');
    const dc = conn.open();
    expect(host.runtime.snapshot().messages.channelsOpen).toBe(1);

    host.workers[0]!.emit(send('joba.0', 'joba.5', 2));
    host.workers[0]!.emit(send('joba.0', 'joba.5', 3));
    const reassembler = new Reassembler();
    const frames = dc.sent.map((f) => reassembler.accept(f)!);
    // The first message over the channel also asks for a lane for its pair, once.
    expect(frames.map((f) => [f.kind, f.kind === FrameKind.lane ? readLaneControl(f.payload) : describeEnvelope(f.payload)])).toEqual([
      [FrameKind.envelope, 'joba.0>joba.5:2'],
      [FrameKind.lane, { op: 'open', id: 2, from: 'joba.0', to: 'joba.5' }],
      [FrameKind.envelope, 'joba.0>joba.5:3'],
    ]);

    conn.events!.iceState('failed');
    host.workers[0]!.emit(send('joba.0', 'joba.5', 4));
    await settle();
    expect(host.socket().binary.map(describeEnvelope)).toEqual(['joba.0>joba.5:1', 'joba.0>joba.5:2', 'joba.0>joba.5:3', 'joba.0>joba.5:4']);
    expect(host.runtime.snapshot().messages).toMatchObject({ channelOut: 2, relayOut: 4, resentAfterBreak: 2, channelsOpen: 0 });
  });

  it('hands a task a lane to a receiver elsewhere, keeps what it writes there until acknowledged, and relays the rest when the lane closes', async () => {
    const { createPeer, peers } = fakePeers();
    const host = await startHost({ createPeer });
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    host.workers[0]!.emit(send('joba.0', 'joba.5', 1));
    await settle();
    host.socket().receive({ type: 'routes', routes: [{ tid: 'joba.5', hostId: 'h2', peerId: 'h2-peer' }] });
    const conn = peers[0]!.outgoing[0]!;
    const dc = conn.open();
    host.workers[0]!.emit(send('joba.0', 'joba.5', 2));
    expect(host.links).toEqual([]);

    // The receiver's page has its end: this page's frame of the job makes the link it offers, and
    // the sending end on it, which it hands to the task.
    conn.events!.data(laneFrame({ op: 'ready', id: 2 }).buffer);
    expect(host.links).toMatchObject([{ id: 0, jobId: 'joba', offer: true, ice: { iceServers: [], iceTransportPolicy: 'all' } }]);
    expect(host.workers[0]!.lanes).toEqual([{ link: 0, stream: 2, gift: { type: 'lane-out', tid: 'joba.0', to: 'joba.5' } }]);
    // the link's signals go to the other page over the page channel
    const offer = { description: { type: 'offer' as const, sdp: 'v=0' } };
    host.links[0]!.events.signal(offer);
    const lastFrame = () => {
      const reassembler = new Reassembler();
      return dc.sent.map((f) => reassembler.accept(f)!).at(-1)!;
    };
    expect(readLaneControl(lastFrame().payload)).toEqual({ op: 'signal', job: 'joba', signal: offer });

    const written = (seq: number) => encodeMessage({ from: 'joba.0', to: 'joba.5', tag: 1, seq, data: seq });
    host.workers[0]!.emit({ type: 'lane-wrote', tid: 'joba.0', pairs: [{ to: 'joba.5', seq: 4, count: 2 }] });
    host.workers[0]!.emit({ type: 'lane-wrote', tid: 'joba.0', pairs: [{ to: 'joba.5', seq: 5, count: 1 }] });
    expect(host.runtime.snapshot().messages).toMatchObject({ channelOut: 4, laneOut: 3 });
    // the receiver's host acknowledges: the worker, which keeps its copies, hears of it
    const ack = encodeEnvelope({ type: 'ack', of: 'joba.0', by: 'joba.5', seq: 3 });
    conn.events!.data(toFrames(FrameKind.envelope, ack, 1)[0]!.buffer);
    expect(host.workers[0]!.received).toContainEqual({ type: 'lane-acked', tid: 'joba.0', to: 'joba.5', seq: 3 });
    // the lane closes: the worker hands over its copies, one of them acknowledged before its ack reached the worker
    host.workers[0]!.emit({ type: 'lane-sent', tid: 'joba.0', envelopes: [written(3), written(4), written(5)] });
    host.workers[0]!.emit({ type: 'lane-closed', tid: 'joba.0', to: 'joba.5' });
    await vi.advanceTimersByTimeAsync(60);
    expect(host.socket().binary.map(describeEnvelope)).toEqual(['joba.0>joba.5:1', 'joba.0>joba.5:4', 'joba.0>joba.5:5']);
    expect(dc.sent.length).toBeGreaterThan(0);
  });

  it('without data channels, asks for a relay lane, hands its ends to the workers, and keeps the copies until acknowledged through the relay', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0), assignment('joba', 1)] });
    host.workers[0]!.emit(send('joba.0', 'joba.5', 1));
    host.workers[0]!.emit(send('joba.0', 'joba.5', 2));
    await settle();
    expect(host.socket().sentOfType('lane-open')).toEqual([{ type: 'lane-open', from: 'joba.0', to: 'joba.5' }]);

    const token = 'f'.repeat(32);
    host.socket().receive({ type: 'lane', end: 'out', from: 'joba.0', to: 'joba.5', token });
    expect(host.workers[0]!.received.find((m) => m.type === 'relay-lane-out')).toEqual({
      type: 'relay-lane-out',
      tid: 'joba.0',
      to: 'joba.5',
      url: `ws://coordinator/lane?token=${token}`,
    });
    const written = (seq: number) => encodeMessage({ from: 'joba.0', to: 'joba.5', tag: 1, seq, data: seq });
    host.workers[0]!.emit({ type: 'lane-wrote', tid: 'joba.0', pairs: [{ to: 'joba.5', seq: 4, count: 2 }] });
    expect(host.runtime.snapshot().messages).toMatchObject({ channelOut: 0, relayOut: 4, relayLaneOut: 2 });
    host.socket().receiveBinary(encodeEnvelope({ type: 'ack', of: 'joba.0', by: 'joba.5', seq: 3 }));
    expect(host.workers[0]!.received).toContainEqual({ type: 'lane-acked', tid: 'joba.0', to: 'joba.5', seq: 3 });
    host.workers[0]!.emit({ type: 'lane-sent', tid: 'joba.0', envelopes: [written(4)] });
    host.workers[0]!.emit({ type: 'lane-closed', tid: 'joba.0', to: 'joba.5' });
    await vi.advanceTimersByTimeAsync(60);
    // the two first went through the relay, and the copy not acknowledged goes again once the lane closed
    expect(host.socket().binary.map(describeEnvelope)).toEqual(['joba.0>joba.5:1', 'joba.0>joba.5:2', 'joba.0>joba.5:4']);

    // receiving ends: one for a task of this page goes to its worker, one for a task elsewhere is declined
    host.socket().receive({ type: 'lane', end: 'in', from: 'joba.7', to: 'joba.1', token: 'a'.repeat(32) });
    host.socket().receive({ type: 'lane', end: 'in', from: 'joba.7', to: 'joba.9', token: 'b'.repeat(32) });
    expect(host.workers[1]!.received.find((m) => m.type === 'relay-lane-in')).toEqual({
      type: 'relay-lane-in',
      tid: 'joba.1',
      from: 'joba.7',
      url: `ws://coordinator/lane?token=${'a'.repeat(32)}`,
    });
    expect(host.socket().sentOfType('lane-declined')).toEqual([{ type: 'lane-declined', token: 'b'.repeat(32) }]);

    // what the lane brought is acknowledged through the relay once reported
    host.workers[1]!.emit({ type: 'delivered', tid: 'joba.1', entries: [{ n: 1, from: 'joba.7', seq: 1, lane: true }] });
    await vi.advanceTimersByTimeAsync(20);
    expect(host.socket().binary.map(describeEnvelope).at(-1)).toBe('ack joba.7>joba.1:1');
    expect(host.runtime.snapshot().messages).toMatchObject({ relayIn: 1, channelIn: 0 });
  });

  it('fails a task that writes on a lane as another task', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    host.workers[0]!.emit({ type: 'lane-sent', tid: 'joba.0', envelopes: [encodeMessage({ from: 'joba.1', to: 'joba.5', tag: 1, seq: 1, data: 0 })] });
    await settle();
    expect(host.runtime.snapshot().failed).toBe(1);
  });

  it('fails a task that says it wrote on a lane to a task of another job', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    host.workers[0]!.emit({ type: 'lane-wrote', tid: 'joba.0', pairs: [{ to: 'jobb.5', seq: 1, count: 1 }] });
    await settle();
    expect(host.runtime.snapshot().failed).toBe(1);
    expect(host.runtime.snapshot().messages).toMatchObject({ channelOut: 0, laneOut: 0 });
  });
});
