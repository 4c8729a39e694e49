import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkValue,
  decodeValue,
  encodeEnvelope,
  encodeMessage,
  encodeValue,
  imageParts,
  readSealed,
  sealMessage,
  unsealMessage,
  type TaskMessage,
} from '../src/index.ts';

/** A message envelope around value-codec JSON and segments that encodeValue would never make. */
const rawMessage = (data: unknown, segments: Uint8Array[] = []): Uint8Array =>
  encodeEnvelope({ type: 'msg', from: 'abcd.1', to: 'abcd.2', tag: 4, seq: 2, data, sizes: segments.map((s) => s.byteLength) }, segments);

/** `frame` with the text `from`, found once in it, overwritten by `to` of the same length. */
function overwritten(frame: Uint8Array, from: string, to: string): Uint8Array {
  const [needle, patch] = [from, to].map((text) => new TextEncoder().encode(text));
  expect(patch!.byteLength).toBe(needle!.byteLength);
  const at = frame.findIndex((_, i) => needle!.every((byte, j) => frame[i + j] === byte));
  expect(at, `"${from}" in the frame`).toBeGreaterThanOrEqual(0);
  const copy = frame.slice();
  copy.set(patch!, at);
  return copy;
}

/** What decodeValue throws, null when it does not. */
function decodeError(json: unknown, buffers: Uint8Array[]): string | null {
  try {
    decodeValue(json, buffers);
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

// ---- arbitraries ----

const tidArb = fc
  .tuple(fc.stringMatching(/^[a-z0-9]{4,8}$/), fc.integer({ min: 0, max: 999_999_999 }))
  .map(([job, n]) => `${job}.${n}`);

const binaryArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.float64Array({ maxLength: 4 }),
  fc.float32Array({ maxLength: 4 }),
  fc.int16Array({ maxLength: 4 }),
  fc.uint32Array({ maxLength: 4 }),
  fc.uint8ClampedArray({ maxLength: 4 }),
  fc.bigInt64Array({ maxLength: 3 }),
  // a view into a larger buffer carries only its own bytes
  fc.tuple(fc.float64Array({ minLength: 2, maxLength: 6 }), fc.nat()).map(([a, start]) => a.subarray(start % a.length)),
  fc.uint8Array({ maxLength: 6 }).map((a) => new DataView(a.buffer)),
  fc.uint8Array({ maxLength: 6 }).map((a) => a.buffer),
);

const { value: valueArb } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 3 },
    fc.jsonValue({ maxDepth: 1 }),
    fc.constantFrom(undefined, NaN, -0, Infinity, -Infinity),
    fc.bigInt(),
    binaryArb,
    fc.array(tie('value'), { maxLength: 3 }),
    // `$wpvm` is the codec's reserved key: a program's own object using it must survive too.
    fc.dictionary(fc.constantFrom('a', 'b', '$wpvm'), tie('value'), { maxKeys: 3 }),
  ),
}));

const messageArb: fc.Arbitrary<TaskMessage> = fc
  .record({
    from: tidArb,
    to: tidArb,
    tag: fc.integer({ min: 0, max: 0x7fffffff }),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    data: valueArb,
  });

/**
 * Value-codec JSON as a faulty or hostile sender might write it: tags known and unknown,
 * segment indices in and out of range, bigint digits and not.
 */
const { node: encodedArb } = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 3 },
    fc.jsonValue({ maxDepth: 1 }),
    fc.record(
      {
        $wpvm: fc.constantFrom('Float64Array', 'Int16Array', 'BigUint64Array', 'Uint8Array', 'DataView', 'ArrayBuffer', 'bigint', 'object', 'NaN', 'undefined', 'Map', 'toString', '__proto__'),
        b: fc.oneof(fc.integer({ min: -1, max: 4 }), fc.constant('0')),
        v: fc.oneof(fc.stringMatching(/^-?[0-9]{1,20}$/), fc.constantFrom('1.5', 'x', null), tie('node')),
      },
      { requiredKeys: ['$wpvm'] },
    ),
    fc.array(tie('node'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('a', 'b'), tie('node'), { maxKeys: 2 }),
  ),
}));

const segmentsArb = fc.array(fc.integer({ min: 0, max: 17 }).map((n) => new Uint8Array(n)), { maxLength: 4 });

describe('readSealed', () => {
  it('accepts what encodeMessage makes: its header fields, and the envelope itself rather than a copy', () => {
    const messages: TaskMessage[] = [
      { from: 'abcd.1', to: 'abcd.22', tag: 3, seq: 9, data: { halo: new Float64Array([1.5, -0, NaN]), n: 2n ** 70n } },
      { from: 'abcd.7', to: 'abcd.22', tag: 0x7fffffff, seq: 13, data: { tid: 'abcd.7', ok: false } },
      { from: 'abcd.1', to: 'abcd.1', tag: 0, seq: Number.MAX_SAFE_INTEGER, data: undefined },
    ];
    for (const { data, ...fields } of messages) {
      const envelope = encodeMessage({ ...fields, data });
      const read = readSealed(envelope);
      // toStrictEqual: no `data` the host could copy out
      expect(read).toStrictEqual({ ok: true, message: { ...fields, envelope } });
      expect(read.ok && read.message.envelope).toBe(envelope);
    }
  });

  it('accepts any message encodeMessage makes (property)', () => {
    fc.assert(
      fc.property(messageArb, (message) => {
        const envelope = encodeMessage(message);
        const { data: _, ...fields } = message;
        expect(readSealed(envelope)).toStrictEqual({ ok: true, message: { ...fields, envelope } });
      }),
    );
  });

  it('refuses an ack, data that is not JSON, and data its byte segments cannot hold, each with its reason', () => {
    const good = encodeMessage({ from: 'abcd.1', to: 'abcd.2', tag: 1, seq: 1, data: { key: 'value' } });
    const refused: Record<string, [Uint8Array, RegExp]> = {
      ack: [encodeEnvelope({ type: 'ack', of: 'abcd.1', by: 'abcd.2', seq: 1 }), /type ack, not a task message/],
      'image part': [imageParts('abcd.2', 1, new Uint8Array(3))[0]!, /type part, not a task message/],
      'data not JSON': [overwritten(good, '"value"}', '"value"]'), /data is not JSON/],
      'missing byte segment': [rawMessage({ $wpvm: 'Uint8Array', b: 1 }, [new Uint8Array(4)]), /^message data: .*missing byte segment 1/],
      'Float64Array of 12 bytes': [rawMessage({ grid: { $wpvm: 'Float64Array', b: 0 } }, [new Uint8Array(12)]), /^message data: .*12 bytes.*8-byte elements/],
      'not an envelope': [new Uint8Array([1, 0, 0, 0, 0x7b]), /not JSON/],
    };
    for (const [name, [envelope, reason]] of Object.entries(refused)) {
      expect(readSealed(envelope), name).toEqual({ ok: false, message: expect.stringMatching(reason) });
      // what a host refuses is exactly what the receiving task could not read
      expect(unsealMessage(envelope), name).toBeNull();
    }
    expect(readSealed(good).ok).toBe(true);
  });
});

describe('checkValue', () => {
  it('passes whatever encodeValue makes (property)', () => {
    fc.assert(
      fc.property(valueArb, (value) => {
        const { json, buffers } = encodeValue(value);
        expect(checkValue(json, buffers)).toBeNull();
      }),
    );
  });

  it('gives the reason decodeValue would throw, for values made by hand', () => {
    const bad: Record<string, [unknown, Uint8Array[]]> = {
      'Float64Array of 12 bytes': [{ $wpvm: 'Float64Array', b: 0 }, [new Uint8Array(12)]],
      'BigInt64Array of 4 bytes': [[1, { $wpvm: 'BigInt64Array', b: 0 }], [new Uint8Array(4)]],
      'missing byte segment': [{ a: { $wpvm: 'DataView', b: 3 } }, [new Uint8Array(3)]],
      'segment index as text': [{ $wpvm: 'ArrayBuffer', b: '0' }, [new Uint8Array(3)]],
      'unknown tag': [{ $wpvm: 'Map' }, []],
      'tag inherited from Object.prototype': [{ $wpvm: 'toString', b: 0 }, [new Uint8Array(8)]],
      'bigint not an integer': [{ $wpvm: 'bigint', v: '1.5' }, []],
      'wrapped object of null': [{ $wpvm: 'object', v: null }, []],
    };
    for (const [name, [json, buffers]] of Object.entries(bad)) {
      const thrown = decodeError(json, buffers);
      expect(thrown, name).not.toBeNull();
      expect(checkValue(json, buffers), name).toBe(thrown);
    }
  });

  it('is null exactly when decodeValue does not throw, and otherwise says why (property)', () => {
    fc.assert(
      fc.property(encodedArb, segmentsArb, (json, buffers) => {
        expect(checkValue(json, buffers)).toBe(decodeError(json, buffers));
      }),
      { numRuns: 500 },
    );
  });
});

describe('sealMessage and unsealMessage', () => {
  it('seal a message as encodeMessage does, and unseal it with its data, binary bit for bit', () => {
    const floats = new Float64Array([0.1, -0, NaN, Infinity, 7]);
    const message: TaskMessage = {
      from: 'abcd.3',
      to: 'abcd.1',
      tag: 9,
      seq: 5,
      data: { floats, row: floats.subarray(1, 3), words: new Int16Array([1, -2]), raw: new Uint8Array([5, 6]).buffer, u: undefined, big: -(2n ** 70n) },
    };
    const sealed = sealMessage(message);
    const { data: _, ...fields } = message;
    expect(sealed).toStrictEqual({ ...fields, envelope: encodeMessage(message) });

    const back = unsealMessage(sealed.envelope);
    expect(back).not.toBeNull();
    expect(back).toEqual(message);
    const data = back!.data as { floats: Float64Array; row: Float64Array; raw: ArrayBuffer; u: undefined };
    expect(new Uint8Array(data.floats.buffer)).toEqual(new Uint8Array(floats.buffer));
    expect(Object.is(data.row[0], -0)).toBe(true);
    expect(data.row.buffer.byteLength).toBe(16);
    expect('u' in data).toBe(true);
  });

  it('round-trip any message (property)', () => {
    fc.assert(
      fc.property(messageArb, (message) => {
        const sealed = sealMessage(message);
        expect(readSealed(sealed.envelope)).toStrictEqual({ ok: true, message: sealed });
        // re-encoding compares binary data bit for bit, which toEqual would not for NaN payloads
        expect(encodeMessage(unsealMessage(sealed.envelope)!)).toEqual(sealed.envelope);
        expect(unsealMessage(sealed.envelope)).toEqual(message);
      }),
    );
  });

  it('unseal garbage to null, never a throw', () => {
    const good = encodeMessage({ from: 'abcd.1', to: 'abcd.2', tag: 1, seq: 1, data: new Uint8Array(10) });
    const garbage = [
      new Uint8Array(0),
      new Uint8Array([1, 2, 3]),
      new Uint8Array([255, 255, 255, 255]),
      good.subarray(0, good.byteLength - 1),
      new Uint8Array([...good, 0]),
      encodeEnvelope({ type: 'ack', of: 'abcd.1', by: 'abcd.2', seq: 1 }),
      rawMessage({ $wpvm: 'Float64Array', b: 0 }, [new Uint8Array(12)]),
      rawMessage({ $wpvm: 'bigint', v: 'x' }),
    ];
    for (const bytes of garbage) expect(unsealMessage(bytes)).toBeNull();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(() => unsealMessage(bytes)).not.toThrow();
      }),
    );
  });
});
