/**
 * How a message's `data` crosses the wire: a JSON tree plus raw byte segments. Binary data
 * (ArrayBuffer, typed arrays, DataView) travels as bytes, bit for bit, never as text; numbers
 * JSON cannot hold (NaN, ±Infinity, -0) and `undefined` are tagged. Objects tagged by us use
 * the reserved key `$wpvm`; a program's own object with that key is wrapped, so any value of
 * these kinds survives the round trip.
 */

import { WebpvmError } from './errors.ts';

const TAG = '$wpvm';

const TYPED = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
} as const;
type TypedName = keyof typeof TYPED;

export interface EncodedValue {
  json: unknown;
  buffers: Uint8Array[];
}

export function encodeValue(value: unknown): EncodedValue {
  const buffers: Uint8Array[] = [];
  const bytesOf = (view: Uint8Array): number => buffers.push(view) - 1;
  const walk = (v: unknown): unknown => {
    if (v === undefined) return { [TAG]: 'undefined' };
    if (typeof v === 'number') {
      if (Number.isNaN(v)) return { [TAG]: 'NaN' };
      if (v === Infinity) return { [TAG]: 'Infinity' };
      if (v === -Infinity) return { [TAG]: '-Infinity' };
      if (Object.is(v, -0)) return { [TAG]: '-0' };
      return v;
    }
    if (typeof v === 'bigint') return { [TAG]: 'bigint', v: v.toString() };
    if (typeof v === 'function' || typeof v === 'symbol') throw new WebpvmError('E_BAD_REQUEST', `message data cannot hold a ${typeof v}`);
    if (v === null || typeof v !== 'object') return v;
    if (v instanceof ArrayBuffer) return { [TAG]: 'ArrayBuffer', b: bytesOf(new Uint8Array(v)) };
    if (ArrayBuffer.isView(v)) {
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      const kind = v instanceof DataView ? 'DataView' : v.constructor.name;
      return { [TAG]: kind, b: bytesOf(bytes) };
    }
    if (Array.isArray(v)) return v.map(walk);
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      // A Map, Date or class instance would arrive as {} on another tab: refuse it everywhere instead.
      const kind = (v as { constructor?: { name?: string } }).constructor?.name || 'object with a prototype';
      throw new WebpvmError('E_BAD_REQUEST', `message data cannot hold a ${kind}: use plain objects, arrays and typed arrays`);
    }
    // fromEntries defines own properties: a key "__proto__" stays data, it does not set the prototype.
    const out = Object.fromEntries(Object.entries(v).map(([k, item]) => [k, walk(item)]));
    return Object.hasOwn(v, TAG) ? { [TAG]: 'object', v: out } : out;
  };
  return { json: walk(value), buffers };
}

export function decodeValue(json: unknown, buffers: readonly Uint8Array[]): unknown {
  return walkEncoded(json, buffers, true);
}

/**
 * Why `decodeValue(json, buffers)` would throw, or null. Hosts check a message's data this way
 * and pass its envelope on: only the receiving task's worker copies the bytes out.
 */
export function checkValue(json: unknown, buffers: readonly Uint8Array[]): string | null {
  try {
    walkEncoded(json, buffers, false);
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** decodeValue, or with `materialize` false the same checks with no bytes copied (binary values come out null). */
function walkEncoded(json: unknown, buffers: readonly Uint8Array[], materialize: boolean): unknown {
  const bytes = (index: unknown, elementBytes = 1): ArrayBuffer | null => {
    const b = typeof index === 'number' ? buffers[index] : undefined;
    if (!b) throw new Error(`value refers to a missing byte segment ${String(index)}`);
    if (b.byteLength % elementBytes !== 0) throw new RangeError(`a byte segment of ${b.byteLength} bytes holds no whole number of ${elementBytes}-byte elements`);
    return materialize ? b.slice().buffer : null;
  };
  const walk = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(walk);
    const o = v as Record<string, unknown>;
    const tag = o[TAG];
    if (typeof tag === 'string') {
      switch (tag) {
        case 'undefined':
          return undefined;
        case 'NaN':
          return NaN;
        case 'Infinity':
          return Infinity;
        case '-Infinity':
          return -Infinity;
        case '-0':
          return -0;
        case 'bigint':
          return BigInt(String(o.v));
        case 'object':
          return walkFields(o.v as Record<string, unknown>);
        case 'ArrayBuffer':
          return bytes(o.b);
        case 'DataView': {
          const buffer = bytes(o.b);
          return buffer && new DataView(buffer);
        }
        default: {
          if (!Object.hasOwn(TYPED, tag)) throw new Error(`unknown value tag ${tag}`);
          const Typed = TYPED[tag as TypedName];
          const buffer = bytes(o.b, Typed.BYTES_PER_ELEMENT);
          return buffer && new Typed(buffer);
        }
      }
    }
    return walkFields(o);
  };
  const walkFields = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(o).map(([k, item]) => [k, walk(item)]));
  return walk(json);
}
