import { ImageAssembly, LIMITS, decodeEnvelope, decodeImage, sealMessage, type HostMessage, type SealedMessage, type TaskRef } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { CheckpointKeeper } from '../src/host/checkpoint-keeper.ts';
import type { WorkerCheckpoint } from '../src/host/slot-pool.ts';
import { memoryStore } from './support/memory-store.ts';
import { settle } from './support/timing.ts';

/** A task that has not talked to another yet: its checkpoint goes as JSON. */
const checkpoint = { state: { i: 3 }, rng: [1, 2, 3, 4] as [number, number, number, number], sent: [], requests: 1 };
const taken = (extra: Partial<WorkerCheckpoint> = {}): WorkerCheckpoint => ({
  type: 'checkpoint',
  tid: 'joba.0',
  frozen: false,
  checkpoint,
  stateBuffers: [],
  received: 4,
  unread: [2],
  unreadLane: [],
  delivered: [],
  log: [],
  ...extra,
});
const ref = { tid: 'joba.0', attempt: 1 };

function setup({ held = [ref] as TaskRef[], online = true, unread = [] as SealedMessage[] } = {}) {
  const store = memoryStore();
  const sent: HostMessage[] = [];
  const binary: Uint8Array[] = [];
  const checkpointed: [string, number, readonly number[]][] = [];
  const link = { online };
  const keeper = new CheckpointKeeper({
    store,
    inboxes: { checkpointed: (tid, received, unread) => void checkpointed.push([tid, received, unread]), unread: () => unread },
    send: (message) => link.online && sent.push(message) > 0,
    sendBinary: (bytes) => link.online && binary.push(bytes) > 0,
    held: () => held,
  });
  return { keeper, store, sent, binary, checkpointed, link, held };
}

describe('CheckpointKeeper', () => {
  it('keeps a periodic checkpoint, stores it, then sends it for the attempt held here', async () => {
    const t = setup();
    t.keeper.periodic(ref, taken());
    expect(t.checkpointed).toEqual([['joba.0', 4, [2]]]);
    expect(t.sent).toEqual([]);
    await settle();
    expect(t.store.data.get('ckpt:joba.0')).toEqual({ attempt: 1, checkpoint, stateBuffers: [] });
    expect(t.sent).toEqual([{ type: 'checkpoint', tid: 'joba.0', attempt: 1, checkpoint }]);
    expect(t.keeper.forImage('joba.0')).toEqual({ state: { json: { i: 3 }, buffers: [] }, rng: [1, 2, 3, 4], sent: [], requests: 1 });
  });

  it('sends the checkpoint of a task that talks, or whose state holds bytes, as an image of all a crash restart needs', async () => {
    const unread = sealMessage({ from: 'joba.2', to: 'joba.0', tag: 1, seq: 3, data: 'halo' });
    const sentToOthers = sealMessage({ from: 'joba.0', to: 'joba.5', tag: 1, seq: 2, data: new Float64Array([2.5]) }).envelope;
    const t = setup({ unread: [unread] });
    const grid = new Uint8Array([1, 2, 3]);
    t.keeper.periodic(
      ref,
      taken({ checkpoint: { ...checkpoint, sent: [{ to: 'joba.5', seq: 2 }] }, stateBuffers: [grid], delivered: [['joba.2', 3]], log: [sentToOthers] }),
    );
    await settle();
    expect(t.sent).toEqual([{ type: 'checkpoint-image', tid: 'joba.0', attempt: 1, image: 1, imageBytes: expect.any(Number) }]);
    const assembly = new ImageAssembly(LIMITS.imageBytes);
    for (const part of t.binary) {
      const decoded = decodeEnvelope(part);
      if (!decoded.ok || decoded.value.header.type !== 'part') throw new Error('not an image part');
      expect(assembly.add(decoded.value.header, decoded.value.buffers[0]!)).toBeNull();
    }
    const image = decodeImage(assembly.take('joba.0', 1, 1)!);
    if (!image.ok) throw new Error(image.error.message);
    expect(image.value.checkpoint).toMatchObject({ state: { json: { i: 3 }, buffers: [grid] }, sent: [{ to: 'joba.5', seq: 2 }], requests: 1 });
    expect(image.value.delivered).toEqual(new Map([['joba.2', 3]]));
    expect(image.value.mailbox.map((m) => [m.from, m.seq])).toEqual([['joba.2', 3]]);
    expect(image.value.log).toEqual([sentToOthers]);
  });

  it('sends no checkpoint of an attempt no longer held', async () => {
    const t = setup({ held: [{ tid: 'joba.0', attempt: 2 }] });
    t.keeper.periodic(ref, taken());
    await settle();
    expect(t.sent).toEqual([]);
    expect(t.binary).toEqual([]);
    expect(t.store.data.has('ckpt:joba.0')).toBe(true);
  });

  it('sends an image too large for the coordinator to keep once in a while, and at once when a checkpoint is due', async () => {
    const t = setup();
    const huge = () => taken({ stateBuffers: [new Uint8Array(LIMITS.checkpointImageBytes + 1)] });
    t.keeper.periodic(ref, huge());
    t.keeper.periodic(ref, huge());
    await settle();
    expect(t.sent).toEqual([expect.objectContaining({ type: 'checkpoint-image', image: 1, imageBytes: expect.any(Number) })]);
    expect((t.sent[0] as { imageBytes: number }).imageBytes).toBeGreaterThan(LIMITS.checkpointImageBytes);
    t.keeper.due('joba.0');
    t.keeper.periodic(ref, huge());
    t.keeper.periodic(ref, huge());
    await settle();
    expect(t.sent.map((m) => (m as { image: number }).image)).toEqual([1, 2]);
  });

  it('sends a state too large for a JSON frame as an image', async () => {
    const t = setup();
    t.keeper.periodic(ref, taken({ checkpoint: { ...checkpoint, state: 'x'.repeat(LIMITS.valueBytes) } }));
    await settle();
    expect(t.sent).toEqual([expect.objectContaining({ type: 'checkpoint-image', tid: 'joba.0', attempt: 1 })]);
  });

  it('sends a checkpoint the coordinator missed after the next welcome, if its attempt is still held', async () => {
    const t = setup({ online: false, held: [ref, { tid: 'joba.1', attempt: 1 }] });
    t.keeper.periodic(ref, taken());
    t.keeper.periodic({ tid: 'joba.1', attempt: 1 }, taken({ tid: 'joba.1' }));
    await settle();
    t.held.splice(1, 1);
    t.link.online = true;
    t.keeper.welcome();
    expect(t.sent).toEqual([{ type: 'checkpoint', tid: 'joba.0', attempt: 1, checkpoint }]);
    t.keeper.welcome();
    expect(t.sent).toHaveLength(1);
  });

  it('sends nothing after the next welcome for a task it forgot', async () => {
    const t = setup({ online: false });
    t.keeper.periodic(ref, taken());
    await settle();
    t.keeper.forget('joba.0');
    t.link.online = true;
    t.keeper.welcome();
    expect(t.sent).toEqual([]);
    expect(t.keeper.forImage('joba.0')).toBeNull();
  });

  it('resumes from the coordinator’s copy with its counters filled in, and from an image’s checkpoint', () => {
    const t = setup();
    t.keeper.resumeFrom('joba.0', { state: { i: 1 }, rng: [5, 6, 7, 8] });
    expect(t.keeper.forImage('joba.0')).toEqual({ state: { json: { i: 1 }, buffers: [] }, rng: [5, 6, 7, 8], sent: [], requests: 0 });
    const buffers = [new Uint8Array([9])];
    const resume = t.keeper.fromImage('joba.0', { state: { json: { i: 2 }, buffers }, rng: [1, 2, 3, 4], sent: [], requests: 3 }, []);
    expect(resume).toEqual({ state: { i: 2 }, rng: [1, 2, 3, 4], sent: [], requests: 3 });
    expect(t.keeper.forImage('joba.0')?.state.buffers).toBe(buffers);
    expect(t.keeper.fromImage('joba.0', null, [])).toBeNull();
    expect(t.keeper.forImage('joba.0')).toBeNull();
  });

  it('forgets a stored checkpoint of that attempt or an earlier one, and prunes those of tasks with no pending result', async () => {
    const t = setup();
    t.keeper.periodic({ tid: 'joba.0', attempt: 2 }, taken());
    t.keeper.periodic({ tid: 'joba.1', attempt: 1 }, taken({ tid: 'joba.1' }));
    await settle();
    await t.keeper.forgetStored({ tid: 'joba.0', attempt: 1 });
    expect(t.store.data.has('ckpt:joba.0')).toBe(true);
    await t.keeper.forgetStored({ tid: 'joba.0', attempt: 2 });
    expect(t.store.data.has('ckpt:joba.0')).toBe(false);
    await t.keeper.prune(new Set(['joba.7']));
    expect([...t.store.data.keys()]).toEqual([]);
  });
});
