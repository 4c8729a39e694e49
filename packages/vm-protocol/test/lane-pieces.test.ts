import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LANE_MESSAGE_BYTES, LaneAssembly, encodeMessage, isLanePiece, lanePieces } from '../src/index.ts';
import { isMessageFrame } from '../src/message-frame.ts';

const envelope = (bytes: number) => encodeMessage({ from: 'joba.1', to: 'joba.2', tag: 1, seq: 1, data: new Uint8Array(bytes).map((_, i) => i % 251) });
const same = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);

describe('a lane’s pieces of a large envelope', () => {
  it('cuts an envelope into frames no larger than a lane frame, and puts it back together bit for bit (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: LANE_MESSAGE_BYTES, max: 6 * LANE_MESSAGE_BYTES }), (bytes) => {
        const whole = envelope(bytes);
        const pieces = lanePieces(whole);
        expect(pieces.every((p) => isLanePiece(p) && !isMessageFrame(p) && p.byteLength <= LANE_MESSAGE_BYTES)).toBe(true);
        const assembly = new LaneAssembly(8 * LANE_MESSAGE_BYTES);
        const out = pieces.map((p) => assembly.add(p));
        expect(out.slice(0, -1).every((o) => o === null)).toBe(true);
        expect(same(out.at(-1) as Uint8Array, whole)).toBe(true);
      }),
      { numRuns: 20 },
    );
    expect(isLanePiece(envelope(10))).toBe(false);
  });

  it('refuses pieces of a size it will not hold, that do not fit the envelope under way, or that run past it; and starts over', () => {
    const assembly = new LaneAssembly(4 * LANE_MESSAGE_BYTES);
    const [first] = lanePieces(envelope(3 * LANE_MESSAGE_BYTES));
    const other = lanePieces(envelope(2 * LANE_MESSAGE_BYTES));
    expect(assembly.add(lanePieces(envelope(5 * LANE_MESSAGE_BYTES))[0]!)).toBe('bad');
    expect(assembly.add(first!)).toBeNull();
    expect(assembly.add(other[1]!)).toBe('bad');
    // a piece claiming a small envelope: a lane carries those whole
    const small = lanePieces(envelope(3 * LANE_MESSAGE_BYTES))[0]!;
    new DataView(small.buffer).setUint32(4, 100, true);
    expect(assembly.add(small)).toBe('bad');
    // after a refusal the next envelope goes together from its first piece
    const pieces = lanePieces(envelope(2 * LANE_MESSAGE_BYTES));
    const out = pieces.map((p) => assembly.add(p));
    expect(same(out.at(-1) as Uint8Array, envelope(2 * LANE_MESSAGE_BYTES))).toBe(true);
  });
});
