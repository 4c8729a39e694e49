import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_BYTES, FrameKind, Reassembler, WHOLE_BYTES, frameCount, toFrames } from '../../src/host/messaging/channel-frames.ts';
import { sameBytes } from '../support/bytes.ts';

/** Chromium's largest data-channel message. */
const MAX_CHANNEL_MESSAGE = 256 * 1024;

describe('channel frames', () => {
  it('sends a payload up to 64 KiB and an envelope header whole and cuts a larger one into 64 KiB chunks', () => {
    expect(toFrames(FrameKind.envelope, new Uint8Array(WHOLE_BYTES), 0)).toHaveLength(1);
    const frames = toFrames(FrameKind.envelope, new Uint8Array(WHOLE_BYTES + 1), 0);
    expect(frames).toHaveLength(2);
    expect(frames.map((f) => f.byteLength - 14)).toEqual([CHUNK_BYTES, WHOLE_BYTES + 1 - CHUNK_BYTES]);
    expect(Math.max(...frames.map((f) => f.byteLength))).toBeLessThan(MAX_CHANNEL_MESSAGE);
    expect(toFrames(FrameKind.bounce, new Uint8Array(0), 0)).toHaveLength(1);
  });

  it('puts a 64 MiB payload back together whole', () => {
    const payload = new Uint8Array(64 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4093) payload[i] = i & 0xff;
    const reassembler = new Reassembler();
    const frames = toFrames(FrameKind.envelope, payload, 7);
    expect(frames).toHaveLength(frameCount(payload.byteLength));
    const out = frames.map((f) => reassembler.accept(f)).filter((f) => f !== null);
    expect(out).toHaveLength(1);
    expect(out[0]!.kind).toBe(FrameKind.envelope);
    expect(sameBytes(out[0]!.payload, payload)).toBe(true);
  });

  it('reassembles any payloads, with the chunks of different streams interleaved (property)', () => {
    // Small payloads with random bytes, and large ones around the chunk and whole-frame boundaries with a seeded pattern.
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.integer({ min: -2, max: 2 }).map((delta) => Uint8Array.from({ length: WHOLE_BYTES + delta }, (_, i) => i >> 5)),
      fc
        .tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: -2, max: 2 }), fc.integer({ min: 1, max: 255 }))
        .map(([chunks, delta, seed]) => Uint8Array.from({ length: Math.max(0, chunks * CHUNK_BYTES + delta) }, (_, i) => (i * seed) >> 3)),
    );
    const scenario = fc
      .array(fc.tuple(payload, fc.constantFrom(FrameKind.envelope, FrameKind.bounce)), { minLength: 1, maxLength: 4 })
      .chain((payloads) => {
        const streams = payloads.map(([bytes, kind], stream) => toFrames(kind, bytes, stream * 1000));
        const picks = streams.flatMap((frames, stream) => frames.map(() => stream));
        return fc.tuple(fc.constant(payloads), fc.constant(streams), fc.shuffledSubarray(picks, { minLength: picks.length, maxLength: picks.length }));
      });
    fc.assert(
      fc.property(scenario, ([payloads, streams, order]) => {
        const reassembler = new Reassembler();
        const next = streams.map(() => 0);
        const done = new Map<number, { kind: number; payload: Uint8Array }>();
        for (const stream of order) {
          const frame = reassembler.accept(streams[stream]![next[stream]!++]!);
          if (frame) done.set(stream, frame);
        }
        expect(done.size).toBe(payloads.length);
        payloads.forEach(([bytes, kind], stream) => {
          expect(done.get(stream)!.kind).toBe(kind);
          expect(sameBytes(done.get(stream)!.payload, bytes)).toBe(true);
        });
      }),
      { numRuns: 80 },
    );
  });

  it('refuses frames that do not fit together', () => {
    const frames = toFrames(FrameKind.envelope, new Uint8Array(3 * CHUNK_BYTES), 1);
    expect(() => new Reassembler().accept(frames[1]!)).toThrow(/starts at chunk 1/);
    const reassembler = new Reassembler();
    reassembler.accept(frames[0]!);
    expect(() => reassembler.accept(frames[2]!)).toThrow(/out of order/);
    expect(() => new Reassembler().accept(new Uint8Array([0]))).toThrow(/shorter/);
    expect(() => new Reassembler().accept(new Uint8Array([0, 9]))).toThrow(/kind 9/);
    expect(() => new Reassembler().accept(new Uint8Array([5, 0, 1]))).toThrow(/unknown frame type/);
  });
});
