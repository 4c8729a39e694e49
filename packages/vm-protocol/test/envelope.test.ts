import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, decodeValue, encodeEnvelope, encodeMessage, encodeValue, encodedSize, messageFromEnvelope } from '../src/index.ts';

const roundTrip = (value: unknown) => {
  const { json, buffers } = encodeValue(value);
  // the JSON part really goes through text, as it does on the wire
  return decodeValue(JSON.parse(JSON.stringify(json)), buffers.map((b) => b.slice()));
};

describe('value codec', () => {
  it('keeps typed arrays bit for bit, and the numbers JSON cannot hold', () => {
    const f64 = new Float64Array([0.1, -0, NaN, 1e308, Number.MIN_VALUE]);
    const value = { f64, bytes: new Uint8Array([1, 2, 3]).buffer, n: [NaN, -0, Infinity, -Infinity], u: undefined, big: 2n ** 70n };
    const back = roundTrip(value) as typeof value;
    expect(back.f64).toBeInstanceOf(Float64Array);
    expect(new Uint8Array(back.f64.buffer)).toEqual(new Uint8Array(f64.buffer));
    expect(new Uint8Array(back.bytes)).toEqual(new Uint8Array([1, 2, 3]));
    expect(Object.is(back.n[1], -0)).toBe(true);
    expect(back.n[0]).toBeNaN();
    expect(back.n.slice(2)).toEqual([Infinity, -Infinity]);
    expect('u' in back && back.u === undefined).toBe(true);
    expect(back.big).toBe(2n ** 70n);
  });

  it('keeps a subarray view to its own bytes, and an object that uses the reserved key', () => {
    const whole = new Int16Array([1, 2, 3, 4]);
    expect(roundTrip(whole.subarray(1, 3))).toEqual(new Int16Array([2, 3]));
    expect(roundTrip({ $wpvm: 'Float64Array', b: 0 })).toEqual({ $wpvm: 'Float64Array', b: 0 });
  });

  it('refuses values that would not survive the trip, rather than changing them', () => {
    for (const value of [new Map([[1, 2]]), { when: new Date(0) }, [new Set([1])]]) {
      expect(() => encodeValue(value)).toThrow(expect.objectContaining({ code: 'E_BAD_REQUEST' }));
    }
    expect(roundTrip(Object.assign(Object.create(null), { a: 1 }))).toEqual({ a: 1 });
  });

  it('keeps a key named __proto__ as data', () => {
    const value = JSON.parse('{"__proto__": {"x": 1}, "a": {"__proto__": 0}}');
    const back = roundTrip(value) as Record<string, unknown>;
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Object.keys(back)).toEqual(['__proto__', 'a']);
    expect(back).toEqual(value);
  });

  it('round-trips any JSON-like value (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(roundTrip(value)).toEqual(value);
      }),
    );
  });
});

describe('message envelope', () => {
  it('round-trips a message with binary data', () => {
    const message = { from: 'abcd.1', to: 'abcd.2', tag: 3, seq: 9, data: { halo: new Float64Array([1.5, 2.5]) } };
    const decoded = decodeEnvelope(encodeMessage(message));
    expect(decoded.ok).toBe(true);
    if (decoded.ok && decoded.value.header.type === 'msg') {
      expect(messageFromEnvelope(decoded.value.header, decoded.value.buffers)).toEqual(message);
    }
  });

  it('refuses truncated, padded and malformed envelopes with E_BAD_FRAME', () => {
    const good = encodeMessage({ from: 'abcd.1', to: 'abcd.2', tag: 0, seq: 1, data: new Uint8Array(10) });
    const bad = [good.subarray(0, good.length - 1), new Uint8Array([...good, 0]), new Uint8Array([1, 0]), new Uint8Array([255, 255, 255, 0, 1])];
    for (const bytes of bad) {
      const decoded = decodeEnvelope(bytes);
      expect(decoded.ok).toBe(false);
      if (!decoded.ok) expect(decoded.error.code).toBe('E_BAD_FRAME');
    }
    const wrongHeader = encodeEnvelope({ type: 'ack', of: 'abcd.1', by: 'abcd.2', seq: 1 });
    wrongHeader[wrongHeader.length - 2] = 0x7b;
    expect(decodeEnvelope(wrongHeader).ok).toBe(false);
  });

  it('carries data whose JSON is larger than the header fields need, up to the message limit', () => {
    const data = Array.from({ length: 1_000_000 }, (_, i) => i * 1.5);
    const decoded = decodeEnvelope(encodeMessage({ from: 'abcd.1', to: 'abcd.2', tag: 0, seq: 1, data }));
    expect(decoded.ok).toBe(true);
    if (decoded.ok && decoded.value.header.type === 'msg') {
      const back = messageFromEnvelope(decoded.value.header, decoded.value.buffers).data as number[];
      expect([back.length, back[999_999]]).toEqual([1_000_000, 999_999 * 1.5]);
    }
  });

  it('sizes data as it travels', () => {
    expect(encodedSize(encodeValue(new Uint8Array(1000)))).toBeGreaterThanOrEqual(1000);
    expect(encodedSize(encodeValue(new Uint8Array(1000)))).toBeLessThan(1100);
  });
});
