/**
 * The binary framing that envelopes other than messages (envelope.ts) and task images (task-image.ts) share: a
 * little-endian u32 header length, the header as UTF-8 JSON, then byte segments back to back,
 * their sizes listed in the header.
 */

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export function encodeFrame(header: unknown, segments: readonly Uint8Array[]): Uint8Array {
  const head = utf8.encode(JSON.stringify(header));
  const out = new Uint8Array(4 + head.length + segments.reduce((n, b) => n + b.byteLength, 0));
  new DataView(out.buffer).setUint32(0, head.length, true);
  out.set(head, 4);
  let offset = 4 + head.length;
  for (const segment of segments) {
    out.set(segment, offset);
    offset += segment.byteLength;
  }
  return out;
}

/** The header's JSON, not yet checked against a schema, and where the segments begin; or what is wrong. */
export function readFrameHeader(bytes: Uint8Array): { ok: true; raw: unknown; offset: number } | { ok: false; message: string } {
  if (bytes.byteLength < 4) return { ok: false, message: 'shorter than its length prefix' };
  const headLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (4 + headLength > bytes.byteLength) return { ok: false, message: 'header length out of range' };
  try {
    return { ok: true, raw: JSON.parse(fromUtf8.decode(bytes.subarray(4, 4 + headLength))), offset: 4 + headLength };
  } catch {
    return { ok: false, message: 'header is not JSON' };
  }
}

/**
 * Views (not copies) of the segments of `sizes`, in order from `offset`; null when they run past
 * the end. `next` is where the segments end.
 */
export function readSegments(bytes: Uint8Array, offset: number, sizes: readonly number[]): { segments: Uint8Array[]; next: number } | null {
  const segments: Uint8Array[] = [];
  let at = offset;
  for (const size of sizes) {
    if (at + size > bytes.byteLength) return null;
    segments.push(bytes.subarray(at, at + size));
    at += size;
  }
  return { segments, next: at };
}
