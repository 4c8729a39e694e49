import type { TaskMessage } from './envelope.ts';
import { TID_PATTERN } from './ids.ts';
import { LIMITS } from './limits.ts';

/**
 * The binary layout of a message envelope (envelope.ts), all integers little-endian:
 *
 *   u32 MESSAGE_MARK · u8 n, n bytes `from` · u8 n, n bytes `to` · u32 tag · f64 seq ·
 *   u32 n, n bytes the data's JSON (0: no data) · u32 count, count × u32 segment sizes ·
 *   the segments back to back
 *
 * Every message is encoded once and decoded up to four times (its receiver's worker, both pages'
 * bookkeeping of lanes, a relay), so its header is read with a few DataView loads, where a JSON
 * header parsed against a schema cost a ping-pong a quarter of its round trip (bench/README.md).
 * The decoder checks what the schema checked: tids, integer ranges, the segments' extent.
 */

/** Where a JSON-headed frame has its header length, which never comes near this. */
const MESSAGE_MARK = 0xffffffff;

const MAX_TAG = 0x7fffffff;
const MAX_SEGMENTS = 100_000;
const FIXED_BYTES = 4 + 1 + 1 + 4 + 8 + 4 + 4;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
/** Where tids and a small message's JSON are encoded; larger JSON gets a buffer of its own, so this one stays small. */
const SCRATCH_BYTES = 64 * 1024;
const scratch = new Uint8Array(SCRATCH_BYTES);

export interface MessageFields extends Omit<TaskMessage, 'data'> {
  /** The data's value-codec JSON (value-codec.ts), undefined for none. */
  data: unknown;
  sizes: number[];
}

export function isMessageFrame(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) === MESSAGE_MARK;
}

export function encodeMessageFrame(fields: MessageFields, segments: readonly Uint8Array[]): Uint8Array {
  const json = fields.data === undefined ? '' : JSON.stringify(fields.data);
  const room = 3 * (fields.from.length + fields.to.length + json.length);
  // encodeInto a reused buffer: `encode` costs three times as much in Chromium, on every message sent.
  const text = room <= SCRATCH_BYTES ? scratch : new Uint8Array(room);
  const fromEnd = utf8.encodeInto(fields.from, text).written;
  const toEnd = fromEnd + utf8.encodeInto(fields.to, text.subarray(fromEnd)).written;
  const jsonEnd = toEnd + utf8.encodeInto(json, text.subarray(toEnd)).written;
  if (fromEnd > 255 || toEnd - fromEnd > 255) throw new RangeError('a message frame holds tids of at most 255 bytes');

  const segmentBytes = segments.reduce((n, s) => n + s.byteLength, 0);
  const out = new Uint8Array(FIXED_BYTES + jsonEnd + 4 * segments.length + segmentBytes);
  const view = new DataView(out.buffer);
  let at = 0;
  view.setUint32(at, MESSAGE_MARK, true);
  out[(at += 4)] = fromEnd;
  out.set(text.subarray(0, fromEnd), (at += 1));
  out[(at += fromEnd)] = toEnd - fromEnd;
  out.set(text.subarray(fromEnd, toEnd), (at += 1));
  view.setUint32((at += toEnd - fromEnd), fields.tag, true);
  view.setFloat64((at += 4), fields.seq, true);
  view.setUint32((at += 8), jsonEnd - toEnd, true);
  out.set(text.subarray(toEnd, jsonEnd), (at += 4));
  view.setUint32((at += jsonEnd - toEnd), segments.length, true);
  at += 4;
  for (const segment of segments) {
    view.setUint32(at, segment.byteLength, true);
    at += 4;
  }
  for (const segment of segments) {
    out.set(segment, at);
    at += segment.byteLength;
  }
  return out;
}

/**
 * The sender and receiver a message frame names, read from its start alone (a lane's first piece
 * of it, vm-protocol lane.ts); null when that start is not a message frame's.
 */
export function messagePair(start: Uint8Array): { from: string; to: string } | null {
  if (start.byteLength < 6 || new DataView(start.buffer, start.byteOffset, 4).getUint32(0, true) !== MESSAGE_MARK) return null;
  let at = 4;
  const tid = (): string | null => {
    const length = start[at] ?? 0;
    if (length > LIMITS.idChars || at + 1 + length > start.byteLength) return null;
    const value = fromUtf8.decode(start.subarray(at + 1, at + 1 + length));
    at += 1 + length;
    return TID_PATTERN.test(value) ? value : null;
  };
  const from = tid();
  const to = from === null ? null : tid();
  return from !== null && to !== null ? { from, to } : null;
}

/** The fields and views (not copies) of the segments of a message frame, or what is wrong with it. */
export function decodeMessageFrame(
  bytes: Uint8Array,
): { ok: true; fields: MessageFields; segments: Uint8Array[] } | { ok: false; message: string } {
  const bad = (message: string) => ({ ok: false as const, message: `message frame: ${message}` });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  let at = 4;
  const text = (length: number): string | null => {
    if (at + length > end) return null;
    const value = fromUtf8.decode(bytes.subarray(at, at + length));
    at += length;
    return value;
  };
  const tid = (): string | null => {
    if (at + 1 > end) return null;
    const length = bytes[at++]!;
    const value = length <= LIMITS.idChars ? text(length) : null;
    return value !== null && TID_PATTERN.test(value) ? value : null;
  };

  if (end < FIXED_BYTES) return bad('too short');
  if (view.getUint32(0, true) !== MESSAGE_MARK) return bad('not a message frame');
  const from = tid();
  if (from === null) return bad('from is not a tid');
  const to = tid();
  if (to === null) return bad('to is not a tid');
  if (at + 16 > end) return bad('too short');
  const tag = view.getUint32(at, true);
  const seq = view.getFloat64(at + 4, true);
  const jsonLength = view.getUint32(at + 12, true);
  at += 16;
  if (tag > MAX_TAG) return bad('tag out of range');
  if (!isCount(seq) || seq < 1) return bad('seq is not a count from 1');
  const json = text(jsonLength);
  if (json === null) return bad('data runs past the end');
  let data: unknown;
  try {
    data = jsonLength === 0 ? undefined : JSON.parse(json);
  } catch {
    return bad('data is not JSON');
  }
  if (at + 4 > end) return bad('too short');
  const count = view.getUint32(at, true);
  at += 4;
  if (count > MAX_SEGMENTS || at + 4 * count > end) return bad('segment sizes run past the end');
  const sizes: number[] = [];
  let next = at + 4 * count;
  for (let i = 0; i < count; i++, at += 4) sizes.push(view.getUint32(at, true));
  const segments: Uint8Array[] = [];
  for (const size of sizes) {
    if (next + size > end) return bad('segments run past the end');
    segments.push(bytes.subarray(next, (next += size)));
  }
  if (next !== end) return bad('trailing bytes');
  return { ok: true, fields: { from, to, tag, seq, data, sizes }, segments };
}

function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}
