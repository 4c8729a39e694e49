import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, encodeMessage, messageFromEnvelope, type TaskMessage } from '../src/index.ts';
import { decodeMessageFrame, encodeMessageFrame, type MessageFields } from '../src/message-frame.ts';

const fields = (extra: Partial<MessageFields> = {}): MessageFields => ({ from: 'abcd.1', to: 'abcd.22', tag: 7, seq: 3, data: { a: [1, 'é'] }, sizes: [], ...extra });

/** A frame with one field's bytes changed, for the decoder to refuse. */
function patched(frame: Uint8Array, at: number, write: (view: DataView) => void): Uint8Array {
  const copy = frame.slice();
  write(new DataView(copy.buffer, at));
  return copy;
}

describe('message frame', () => {
  it('round-trips its fields and segments, with and without data', () => {
    const segments = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array([9])];
    for (const f of [fields({ sizes: [3, 0, 1] }), fields({ data: undefined, seq: 1 }), fields({ seq: Number.MAX_SAFE_INTEGER, tag: 0x7fffffff })]) {
      const decoded = decodeMessageFrame(encodeMessageFrame(f, f.sizes.length ? segments : []));
      expect(decoded.ok && decoded.fields).toEqual(f);
      expect(decoded.ok && decoded.segments.map((s) => [...s])).toEqual(f.sizes.length ? [[1, 2, 3], [], [9]] : []);
    }
  });

  it('refuses what a schema would: tids, tag, seq, JSON, and segments past or short of its end', () => {
    const good = encodeMessageFrame(fields({ sizes: [2] }), [new Uint8Array(2)]);
    // from at 5 (6 bytes), to at 12 (7 bytes), tag at 19, seq at 23, JSON length at 31
    const bad: Record<string, [Uint8Array, string]> = {
      'from not a tid': [patched(good, 5, (v) => v.setUint8(0, 0x41)), 'from is not a tid'],
      'to not a tid': [patched(good, 12, (v) => v.setUint8(4, 0x2f)), 'to is not a tid'],
      'tid length past the end': [patched(good, 4, (v) => v.setUint8(0, 255)), 'from is not a tid'],
      'tag over 2^31-1': [patched(good, 19, (v) => v.setUint32(0, 0x80000000, true)), 'tag out of range'],
      'seq not an integer': [patched(good, 23, (v) => v.setFloat64(0, 1.5, true)), 'seq is not a count from 1'],
      'seq negative': [patched(good, 23, (v) => v.setFloat64(0, -1, true)), 'seq is not a count from 1'],
      'seq 0': [patched(good, 23, (v) => v.setFloat64(0, 0, true)), 'seq is not a count from 1'],
      'JSON broken': [patched(good, 35, (v) => v.setUint8(0, 0x7d)), 'data is not JSON'],
      'JSON length past the end': [patched(good, 31, (v) => v.setUint32(0, 1e6, true)), 'data runs past the end'],
      truncated: [good.subarray(0, good.length - 1), 'segments run past the end'],
      padded: [new Uint8Array([...good, 0]), 'trailing bytes'],
      'only the mark': [new Uint8Array([255, 255, 255, 255]), 'too short'],
      'another mark': [patched(good, 0, (v) => v.setUint32(0, 7, true)), 'not a message frame'],
    };
    for (const [name, [bytes, reason]] of Object.entries(bad)) {
      expect(decodeMessageFrame(bytes), name).toEqual({ ok: false, message: `message frame: ${reason}` });
      expect(decodeEnvelope(bytes), name).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME' } });
    }
  });

  it('carries any message through an envelope unchanged (property)', () => {
    const tid = fc.tuple(fc.stringMatching(/^[a-z0-9]{4,32}$/), fc.integer({ min: 0, max: 999_999_999 })).map(([job, n]) => `${job}.${n}`);
    const message = fc.record({
      from: tid,
      to: tid,
      tag: fc.integer({ min: 0, max: 0x7fffffff }),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      data: fc.oneof(fc.jsonValue(), fc.uint8Array().map((b) => ({ bytes: b }))),
    });
    fc.assert(
      fc.property(message, (sent: TaskMessage) => {
        const decoded = decodeEnvelope(encodeMessage(sent));
        expect(decoded.ok).toBe(true);
        if (decoded.ok && decoded.value.header.type === 'msg') expect(messageFromEnvelope(decoded.value.header, decoded.value.buffers)).toEqual(sent);
      }),
    );
  });
});
