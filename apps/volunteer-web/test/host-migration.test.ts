import { decodeImage, encodeImage, encodeMessage, encodeValue, imageParts, isSealed, sealMessage, unsealMessage } from '@webpvm/vm-protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FREEZE_GRACE_MS } from '../src/host/host-runtime.ts';
import { Reassembler } from '../src/host/messaging/channel-frames.ts';
import { assignment } from './support/assignments.ts';
import { partOf } from './support/envelopes.ts';
import { fakePeers } from './support/fake-peers.ts';
import { startHost, stopHosts } from './support/start-host.ts';
import { settle } from './support/timing.ts';
import { startsOf } from './support/fake-workers.ts';

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  stopHosts();
  vi.useRealTimers();
});

const message = (from: string, to: string, seq: number, data: unknown) => ({ from, to, tag: 1, seq, data });

/**
 * The last image the page sent for `tid` (as the parts of `attempt`, when given), put back together
 * from its part frames: a task's checkpoint images go before its migration's.
 */
function sentImage(binary: Uint8Array[], tid: string, attempt?: number) {
  const all = binary.flatMap((bytes) => {
    const part = partOf(bytes);
    return part && part.header.tid === tid && (attempt === undefined || part.header.attempt === attempt) ? [part] : [];
  });
  const first = all.findLastIndex((part) => part.header.index === 0);
  const parts = all.slice(Math.max(0, first)).map((part) => part.piece);
  const whole = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    whole.set(part, offset);
    offset += part.byteLength;
  }
  const decoded = decodeImage(whole);
  if (!decoded.ok) throw new Error(decoded.error.message);
  return { bytes: whole.byteLength, image: decoded.value };
}

/** joba.0 migrates to `host` as attempt 2: its image's parts through the coordinator, then its assignment. */
function arrives(host: Awaited<ReturnType<typeof startHost>>, image: Uint8Array): void {
  for (const part of imageParts('joba.0', 2, image)) host.socket().receiveBinary(part);
  host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0, { attempt: 2, imageBytes: image.byteLength })] });
}

describe('HostRuntime migration', () => {
  it('on reclaim stops offering slots, and sends each task away with its checkpoint and what it has not read since', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    await settle();
    // two messages reach the task; it checkpoints having read the first only
    host.socket().receiveBinary(encodeMessage(message('joba.5', 'joba.0', 1, 'one')));
    host.socket().receiveBinary(encodeMessage(message('joba.5', 'joba.0', 2, 'two')));
    await settle();
    const state = encodeValue({ step: 4, grid: new Float64Array([0.5]) });
    host.workers[0]!.emit({
      type: 'checkpoint',
      tid: 'joba.0',
      frozen: false,
      checkpoint: { state: state.json, rng: [1, 2, 3, 4], sent: [{ to: 'joba.5', seq: 7 }], requests: 3 },
      stateBuffers: state.buffers,
      received: 2,
      unread: [2],
      unreadLane: [],
      delivered: [],
      log: [],
    });
    host.socket().receiveBinary(encodeMessage(message('joba.5', 'joba.0', 3, 'three')));
    await settle();
    // a task that talks keeps its checkpoints off the tab as images, for a restart after a crash
    expect(host.socket().sentOfType('checkpoint-image')).toEqual([expect.objectContaining({ tid: 'joba.0', attempt: 1 })]);

    host.runtime.reclaim('input', false);
    expect(host.socket().sentOfType('capacity')).toEqual([{ type: 'capacity', slots: 0 }]);
    expect(host.socket().sentOfType('migrating')).toEqual([{ type: 'migrating', tasks: [{ tid: 'joba.0', attempt: 1 }], reason: 'input' }]);
    expect(host.runtime.snapshot()).toMatchObject({ paused: true, pauseReason: 'input' });
    // the task is in a long loop and never reaches a safe point: its worker goes after the grace period
    await vi.advanceTimersByTimeAsync(FREEZE_GRACE_MS);
    expect(host.workers[0]!.terminated).toBe(true);
    const [migrated] = host.socket().sentOfType('migrated');
    expect(migrated).toMatchObject({ tid: 'joba.0', attempt: 1, frozen: false, obtrusivenessMs: FREEZE_GRACE_MS });
    const { bytes, image } = sentImage(host.socket().binary, 'joba.0');
    expect(migrated!.imageBytes).toBe(bytes);
    expect(image.checkpoint).toMatchObject({ rng: [1, 2, 3, 4], sent: [{ to: 'joba.5', seq: 7 }], requests: 3 });
    expect(image.mailbox.map((m) => isSealed(m) && unsealMessage(m.envelope)!.data)).toEqual(['two', 'three']);
    expect(image.delivered).toEqual(new Map([['joba.5', 3]]));
    expect(host.runtime.snapshot()).toMatchObject({ running: [], workersAlive: 0, migrations: { out: 1, in: 0 }, lastReclaim: { reason: 'input' } });

    host.runtime.available();
    expect(host.socket().sentOfType('capacity').at(-1)).toEqual({ type: 'capacity', slots: 2 });
    expect(host.runtime.snapshot().paused).toBe(false);
  });

  it('starts a task that arrives with an image from its state, with its mailbox first, drops repeats and says it runs again', async () => {
    const host = await startHost();
    await host.connect();
    const state = encodeValue({ step: 4 });
    const image = encodeImage({
      tid: 'joba.0',
      log: [],
      checkpoint: { state, rng: [1, 2, 3, 4], sent: [], requests: 1 },
      delivered: new Map([['joba.5', 2]]),
      mailbox: [sealMessage(message('joba.5', 'joba.0', 2, 'unread'))],
      pending: [sealMessage(message('joba.5', 'joba.0', 4, 'after a gap'))],
    });
    arrives(host, image);
    await settle();
    const start = startsOf(host.workers[0]!.received[0]!)[0]!;
    expect(start).toMatchObject({
      type: 'start',
      task: { tid: 'joba.0', attempt: 2, resume: { state: { step: 4 }, rng: [1, 2, 3, 4], sent: [], requests: 1 } },
    });
    expect(start.mailbox?.map(unsealMessage)).toEqual([{ from: 'joba.5', to: 'joba.0', tag: 1, seq: 2, data: 'unread' }]);
    expect(host.socket().sentOfType('resumed')).toEqual([{ type: 'resumed', tid: 'joba.0', attempt: 2 }]);
    // seq 2 again is a repeat; seq 3 fills the gap and lets seq 4 through
    host.socket().receiveBinary(encodeMessage(message('joba.5', 'joba.0', 2, 'unread')));
    host.socket().receiveBinary(encodeMessage(message('joba.5', 'joba.0', 3, 'three')));
    await settle();
    const delivered = host.workers[0]!.received.flatMap((m) => (m.type === 'deliver' ? m.envelopes.map((e) => unsealMessage(e)!.data) : []));
    expect(delivered).toEqual(['three', 'after a gap']);
    expect(host.runtime.snapshot().migrations).toEqual({ out: 0, in: 1, refilled: 0 });
  });

  it('starts a task whose image names messages it read on lanes once their senders sent them again, in the image’s order', async () => {
    const host = await startHost();
    await host.connect();
    const image = encodeImage({
      tid: 'joba.0',
      log: [],
      checkpoint: { state: encodeValue({ step: 4 }), rng: [1, 2, 3, 4], sent: [], requests: 0 },
      delivered: new Map([['joba.5', 3], ['joba.6', 1]]),
      // read on lanes since its checkpoint: named only, their senders' logs keep them
      mailbox: [{ from: 'joba.5', seq: 2 }, sealMessage(message('joba.6', 'joba.0', 1, 'whole')), { from: 'joba.5', seq: 3 }],
      pending: [],
    });
    arrives(host, image);
    await settle();
    expect(host.workers).toHaveLength(0);
    expect(host.socket().sentOfType('refill')).toEqual([{ type: 'refill', tid: 'joba.0', attempt: 2, from: [{ tid: 'joba.5', after: 1 }] }]);
    // the sender sends again what its log holds after 1, through the relay, and one new message
    for (const [seq, data] of [[2, 'two'], [4, 'four']] as const) host.socket().receiveBinary(encodeMessage(message('joba.5', 'joba.0', seq, data)));
    await vi.advanceTimersByTimeAsync(3_000);
    expect(host.workers).toHaveLength(0);
    expect(host.socket().sentOfType('refill')).toHaveLength(2);
    host.socket().receiveBinary(encodeMessage(message('joba.5', 'joba.0', 3, 'three')));
    await settle();
    const start = startsOf(host.workers[0]!.received[0]!)[0]!;
    expect(start.mailbox?.map((e) => unsealMessage(e)!.data)).toEqual(['two', 'whole', 'three']);
    expect(host.socket().sentOfType('resumed')).toEqual([{ type: 'resumed', tid: 'joba.0', attempt: 2 }]);
    await settle();
    const delivered = host.workers[0]!.received.flatMap((m) => (m.type === 'deliver' ? m.envelopes.map((e) => unsealMessage(e)!.data) : []));
    expect(delivered).toEqual(['four']);
    expect(host.runtime.snapshot().migrations).toEqual({ out: 0, in: 1, refilled: 1 });
  });

  it('stops waiting for the messages its image names when the task is cancelled', async () => {
    const host = await startHost();
    await host.connect();
    const image = encodeImage({ tid: 'joba.0', log: [], checkpoint: null, delivered: new Map([['joba.5', 1]]), mailbox: [{ from: 'joba.5', seq: 1 }], pending: [] });
    arrives(host, image);
    await settle();
    host.socket().receive({ type: 'cancel', tasks: [{ tid: 'joba.0', attempt: 2 }], reason: 'its job was cancelled' });
    host.socket().receiveBinary(encodeMessage(message('joba.5', 'joba.0', 1, 'late')));
    await vi.advanceTimersByTimeAsync(40_000);
    expect(host.workers).toHaveLength(0);
    expect(host.socket().sentOfType('refill')).toHaveLength(1);
    expect(host.socket().sentOfType('results')).toEqual([]);
  });

  it('gives up on messages its image names that never come again: the task fails here as the host’s fault', async () => {
    const host = await startHost();
    await host.connect();
    const image = encodeImage({ tid: 'joba.0', log: [], checkpoint: null, delivered: new Map([['joba.5', 1]]), mailbox: [{ from: 'joba.5', seq: 1 }], pending: [] });
    arrives(host, image);
    await vi.advanceTimersByTimeAsync(29_000);
    expect(host.socket().sentOfType('refill')).toHaveLength(10);
    expect(host.socket().sentOfType('results')).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(host.workers).toHaveLength(0);
    expect(host.socket().sentOfType('results').flatMap((m) => m.items)).toEqual([
      expect.objectContaining({ tid: 'joba.0', attempt: 2, ok: false, error: expect.objectContaining({ code: 'E_HOST_FAULT' }) }),
    ]);
    // a message that comes after is no longer this page's to take
    host.socket().receiveBinary(encodeMessage(message('joba.5', 'joba.0', 1, 'late')));
    await settle();
    expect(host.workers).toHaveLength(0);
  });

  it('waits for an image still on its way, asks for it through the coordinator, then gives up rather than run from nothing', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0, { attempt: 2, imageBytes: 100 })] });
    await vi.advanceTimersByTimeAsync(4_900);
    expect(host.workers).toHaveLength(0);
    expect(host.socket().sentOfType('image-missing')).toEqual([]);
    await vi.advanceTimersByTimeAsync(100);
    expect(host.socket().sentOfType('image-missing')).toEqual([{ type: 'image-missing', tid: 'joba.0', attempt: 2 }]);
    await vi.advanceTimersByTimeAsync(5_050);
    expect(host.workers).toHaveLength(0);
    expect(host.socket().sentOfType('results').flatMap((m) => m.items)).toEqual([
      expect.objectContaining({ tid: 'joba.0', attempt: 2, ok: false, error: expect.objectContaining({ code: 'E_HOST_FAULT' }) }),
    ]);
  });

  it('starts a task whose image comes after its assignment, with the messages that came meanwhile', async () => {
    const host = await startHost();
    await host.connect();
    const image = encodeImage({
      tid: 'joba.0',
      log: [],
      checkpoint: null,
      delivered: new Map([['joba.5', 1]]),
      mailbox: [sealMessage(message('joba.5', 'joba.0', 1, 'in the image'))],
      pending: [],
    });
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0, { attempt: 2, imageBytes: image.byteLength })] });
    // messages for it wait on this page, not bounced back to the coordinator
    host.socket().receiveBinary(encodeMessage(message('joba.5', 'joba.0', 2, 'meanwhile')));
    await settle();
    expect(host.socket().binary).toEqual([]);
    expect(host.workers).toHaveLength(0);
    for (const part of imageParts('joba.0', 2, image)) host.socket().receiveBinary(part);
    await settle();
    const start = startsOf(host.workers[0]!.received[0]!)[0]!;
    expect(start.mailbox?.map((e) => unsealMessage(e)!.data)).toEqual(['in the image']);
    const delivered = host.workers[0]!.received.flatMap((m) => (m.type === 'deliver' ? m.envelopes.map((e) => unsealMessage(e)!.data) : []));
    expect(delivered).toEqual(['meanwhile']);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(host.socket().sentOfType('image-missing')).toEqual([]);
  });

  it('sends an image straight to the destination the coordinator named, over an open data channel, and keeps it to send again', async () => {
    const { createPeer, peers } = fakePeers();
    const host = await startHost({ createPeer });
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    await settle();
    // a channel to the destination's host is open (its tasks and this one talked before)
    host.socket().receive({ type: 'routes', routes: [{ tid: 'joba.5', hostId: 'h2', peerId: 'h2-peer' }] });
    const dc = peers[0]!.outgoing[0]!.open();
    host.runtime.reclaim('input', false);
    host.socket().receive({ type: 'destination', tid: 'joba.0', attempt: 2, peerId: 'h2-peer' });
    await vi.advanceTimersByTimeAsync(FREEZE_GRACE_MS);
    const [migrated] = host.socket().sentOfType('migrated');
    expect(migrated).toMatchObject({ tid: 'joba.0', attempt: 1, via: 'channel' });
    const reassembler = new Reassembler();
    const overChannel = dc.sent.flatMap((piece) => {
      const frame = reassembler.accept(piece);
      return frame ? [frame.payload] : [];
    });
    expect(sentImage(overChannel, 'joba.0', 2).bytes).toBe(migrated!.imageBytes);
    expect(host.socket().binary.filter((b) => partOf(b) !== null)).toEqual([]);
    // the coordinator asks for it again (it did not arrive): it goes through the coordinator now
    host.socket().receive({ type: 'send-image', tid: 'joba.0', attempt: 3 });
    expect(sentImage(host.socket().binary, 'joba.0', 3).bytes).toBe(migrated!.imageBytes);
  });

  it('holds an image cut before its destination is named, then sends it over the channel the answer names, or through the coordinator when none comes', async () => {
    const { createPeer, peers } = fakePeers();
    const host = await startHost({ createPeer });
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0), assignment('joba', 1)] });
    await settle();
    host.socket().receive({ type: 'routes', routes: [{ tid: 'joba.5', hostId: 'h2', peerId: 'h2-peer' }] });
    const dc = peers[0]!.outgoing[0]!.open();
    host.runtime.reclaim('input', false);
    await vi.advanceTimersByTimeAsync(FREEZE_GRACE_MS);
    // both images are cut; neither has gone anywhere yet
    expect(host.socket().sentOfType('migrated')).toEqual([]);
    host.socket().receive({ type: 'destination', tid: 'joba.0', attempt: 2, peerId: 'h2-peer' });
    expect(host.socket().sentOfType('migrated')).toEqual([expect.objectContaining({ tid: 'joba.0', via: 'channel' })]);
    expect(dc.sent.length).toBeGreaterThan(0);
    await vi.advanceTimersByTimeAsync(250);
    expect(host.socket().sentOfType('migrated')).toEqual([
      expect.objectContaining({ tid: 'joba.0', via: 'channel' }),
      expect.objectContaining({ tid: 'joba.1', via: 'coordinator' }),
    ]);
    expect(sentImage(host.socket().binary, 'joba.1', 1).bytes).toBe(host.socket().sentOfType('migrated')[1]!.imageBytes);
  });
});
