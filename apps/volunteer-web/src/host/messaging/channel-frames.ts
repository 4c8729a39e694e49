import { LIMITS, WebpvmError } from '@webpvm/vm-protocol';

/**
 * Framing of everything sent over a data channel. Chromium caps one data-channel message at
 * 256 KiB (PeerJS `raw` closes the connection above it), so a payload over WHOLE_BYTES is cut
 * into chunks of CHUNK_BYTES that the other side puts back together.
 *
 *   whole: [0][kind][payload]
 *   chunk: [1][kind][stream u32][index u32][count u32][part of the payload]   (little endian)
 *
 * Chunks of one stream arrive in order (the channel is reliable and ordered); chunks of
 * different streams may interleave.
 */

/**
 * What a payload is: an envelope (vm-protocol envelope.ts), a bounce — "`by` is not here" — or
 * a lane's negotiation (vm-protocol lane.ts).
 */
export const FrameKind = { envelope: 0, bounce: 1, lane: 2 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export const CHUNK_BYTES = 64 * 1024;
/** A payload goes whole up to a chunk plus room for an envelope's header: 64 KiB of data is one frame, not two. */
export const WHOLE_BYTES = CHUNK_BYTES + 4 * 1024;
const WHOLE = 0;
const CHUNK = 1;
const CHUNK_HEADER = 14;
/** An envelope is at most the message limit plus room for its header fields (envelope.ts). */
const MAX_PAYLOAD = LIMITS.messageBytes + 4 * 1024 * 1024;
const MAX_COUNT = Math.ceil(MAX_PAYLOAD / CHUNK_BYTES);
/** Streams being reassembled at once on one channel; a sender only ever has one in flight. */
const MAX_OPEN_STREAMS = 16;

export interface Frame {
  kind: FrameKind;
  payload: Uint8Array;
}

export function frameCount(payloadBytes: number): number {
  return payloadBytes <= WHOLE_BYTES ? 1 : Math.ceil(payloadBytes / CHUNK_BYTES);
}

/** Frame `index` of `payload`: built on demand, so a large payload is never copied whole. */
export function frameAt(kind: FrameKind, payload: Uint8Array, stream: number, index: number): Uint8Array<ArrayBuffer> {
  const count = frameCount(payload.byteLength);
  if (count === 1) {
    const frame = new Uint8Array(2 + payload.byteLength);
    frame[0] = WHOLE;
    frame[1] = kind;
    frame.set(payload, 2);
    return frame;
  }
  const part = payload.subarray(index * CHUNK_BYTES, (index + 1) * CHUNK_BYTES);
  const frame = new Uint8Array(CHUNK_HEADER + part.byteLength);
  const view = new DataView(frame.buffer);
  frame[0] = CHUNK;
  frame[1] = kind;
  view.setUint32(2, stream >>> 0, true);
  view.setUint32(6, index, true);
  view.setUint32(10, count, true);
  frame.set(part, CHUNK_HEADER);
  return frame;
}

export function toFrames(kind: FrameKind, payload: Uint8Array, stream: number): Uint8Array<ArrayBuffer>[] {
  return Array.from({ length: frameCount(payload.byteLength) }, (_, i) => frameAt(kind, payload, stream, i));
}

interface OpenStream {
  kind: FrameKind;
  count: number;
  parts: Uint8Array[];
}

/** Puts payloads back together on the receiving side. A malformed frame throws E_BAD_FRAME. */
export class Reassembler {
  #streams = new Map<number, OpenStream>();

  /** The payload this frame completes, or null while its stream is still incomplete. */
  accept(frame: Uint8Array): Frame | null {
    if (frame.byteLength < 2) throw bad('frame shorter than its header');
    const kind = frameKind(frame[1]!);
    if (frame[0] === WHOLE) return { kind, payload: frame.subarray(2) };
    if (frame[0] !== CHUNK || frame.byteLength < CHUNK_HEADER) throw bad('unknown frame type');
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const stream = view.getUint32(2, true);
    const index = view.getUint32(6, true);
    const count = view.getUint32(10, true);
    if (count < 2 || count > MAX_COUNT) throw bad(`chunk count ${count} out of range`);
    const part = frame.subarray(CHUNK_HEADER);
    let open = this.#streams.get(stream);
    if (!open) {
      if (index !== 0) throw bad(`stream ${stream} starts at chunk ${index}`);
      if (this.#streams.size >= MAX_OPEN_STREAMS) throw bad('too many streams at once');
      open = { kind, count, parts: [] };
      this.#streams.set(stream, open);
    }
    if (index !== open.parts.length || count !== open.count || kind !== open.kind) throw bad(`chunk ${index} of stream ${stream} out of order`);
    if (index < count - 1 ? part.byteLength !== CHUNK_BYTES : part.byteLength === 0 || part.byteLength > CHUNK_BYTES) {
      throw bad(`chunk ${index} of stream ${stream} has the wrong size`);
    }
    open.parts.push(part);
    if (open.parts.length < count) return null;
    this.#streams.delete(stream);
    return { kind, payload: concat(open.parts) };
  }
}

function frameKind(byte: number): FrameKind {
  if (byte === FrameKind.envelope || byte === FrameKind.bounce || byte === FrameKind.lane) return byte;
  throw bad(`unknown frame kind ${byte}`);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

const bad = (message: string) => new WebpvmError('E_BAD_FRAME', `data channel: ${message}`);
