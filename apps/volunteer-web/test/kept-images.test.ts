import { ImageAssembly, LIMITS, decodeEnvelope, imageParts } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import type { OutboxFrame } from '../src/host/coordinator-outbox.ts';
import { KeptImages } from '../src/host/kept-images.ts';
import { memoryStore } from './support/memory-store.ts';

function setup(store = memoryStore()) {
  const sent: OutboxFrame[] = [];
  const kept = new KeptImages({ store, send: (frame) => sent.push(frame) });
  const messages = () => sent.filter((f): f is Exclude<OutboxFrame, Uint8Array> => !(f instanceof Uint8Array));
  const binary = () => sent.filter((f): f is Uint8Array => f instanceof Uint8Array);
  /** The coordinator sends `bytes` to keep as image `image` of `tid`'s attempt 1. */
  const receive = async (tid: string, bytes: Uint8Array, image: number) => {
    for (const frame of imageParts(tid, 1, bytes, image)) {
      const decoded = decodeEnvelope(frame);
      if (!decoded.ok || decoded.value.header.type !== 'part') throw new Error('not a part');
      kept.part(decoded.value.header, decoded.value.buffers[0]!);
    }
    await kept.keep({ type: 'keep-image', tid, attempt: 1, image, imageBytes: bytes.byteLength });
  };
  return { kept, store, sent, messages, binary, receive };
}

const bytesOf = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('KeptImages (a host keeping other volunteers’ images)', () => {
  it('stores an image whole, says so, and gives it back as asked', async () => {
    const t = setup();
    const image = bytesOf(LIMITS.imagePartBytes * 2 + 5, 7);
    await t.receive('joba.1', image, 42);
    expect(t.messages()).toEqual([{ type: 'image-kept', tid: 'joba.1', image: 42 }]);
    expect(t.store.data.has('kept:joba.1')).toBe(true);

    await t.kept.give({ type: 'return-image', tid: 'joba.1', attempt: 3, image: 42 });
    const assembly = new ImageAssembly(LIMITS.imageBytes);
    for (const frame of t.binary()) {
      const decoded = decodeEnvelope(frame);
      if (!decoded.ok || decoded.value.header.type !== 'part') throw new Error('not a part');
      expect(decoded.value.header).toMatchObject({ tid: 'joba.1', attempt: 3, image: 42 });
      assembly.add(decoded.value.header, decoded.value.buffers[0]!);
    }
    expect(assembly.take('joba.1', 3, 42)).toEqual(image);
    expect(t.messages().at(-1)).toEqual({ type: 'image-returned', tid: 'joba.1', attempt: 3, image: 42 });
  });

  it('gives back nothing for an image it does not keep, and says nothing of one that did not come whole', async () => {
    const t = setup();
    await t.kept.keep({ type: 'keep-image', tid: 'joba.1', attempt: 1, image: 5, imageBytes: 10 });
    await t.receive('joba.2', bytesOf(10, 1), 6);
    await t.kept.give({ type: 'return-image', tid: 'joba.2', attempt: 2, image: 7 });
    await t.kept.give({ type: 'return-image', tid: 'joba.1', attempt: 2, image: 5 });
    expect(t.messages()).toEqual([{ type: 'image-kept', tid: 'joba.2', image: 6 }]);
    expect(t.binary()).toEqual([]);
  });

  it('keeps one image per task, LIMITS.keptImageBytes in all, and forgets what it is told to', async () => {
    const t = setup();
    const part = LIMITS.keptImageBytes / 4;
    for (const [i, tid] of ['joba.1', 'joba.2', 'joba.3'].entries()) await t.receive(tid, bytesOf(part, i), i + 1);
    // a newer image of joba.1 replaces the older one: it still fits
    await t.receive('joba.1', bytesOf(part, 9), 4);
    await t.receive('joba.4', bytesOf(part + 1, 4), 5);
    expect(t.messages().map((m) => (m as { image: number }).image)).toEqual([1, 2, 3, 4]);
    await t.kept.forget(['joba.2']);
    expect(t.store.data.has('kept:joba.2')).toBe(false);
    await t.receive('joba.4', bytesOf(part + 1, 4), 6);
    expect(t.messages().at(-1)).toEqual({ type: 'image-kept', tid: 'joba.4', image: 6 });
  });

  it('lists what it keeps after a welcome, read again from IndexedDB after a reload', async () => {
    const store = memoryStore({ 'ckpt:joba.3': {} });
    const t = setup(store);
    await t.receive('joba.1', bytesOf(4, 1), 1);
    await t.receive('joba.2', bytesOf(4, 1), 2);
    await t.kept.forget(['joba.2']);
    const reloaded = setup(store);
    await reloaded.kept.welcome();
    expect(reloaded.messages()).toEqual([{ type: 'images-kept', tids: ['joba.1'] }]);
    await reloaded.kept.give({ type: 'return-image', tid: 'joba.1', attempt: 2, image: 1 });
    expect(reloaded.messages().at(-1)).toEqual({ type: 'image-returned', tid: 'joba.1', attempt: 2, image: 1 });
  });
});
