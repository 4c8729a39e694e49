import { z } from 'zod';
import { Tid } from './ids.ts';
import { LIMITS } from './limits.ts';
import { encodeFrame, readFrameHeader, readSegments } from './framing.ts';
import { type MessageFields, decodeMessageFrame, encodeMessageFrame, isMessageFrame } from './message-frame.ts';
import { type EncodedValue, checkValue, decodeValue, encodeValue } from './value-codec.ts';

/**
 * The binary envelope of everything one task sends another, identical on every path (relay
 * through the coordinator's WebSocket, WebRTC data channel, lane). A message has a binary header
 * (message-frame.ts); acknowledgements and image pieces, a little-endian u32 header length, the
 * header as UTF-8 JSON, then the byte segments of the data back to back.
 */

const Seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * One message. `seq` numbers the messages of one (from, to) pair from 1 (an exit notice is its
 * ended sender's next). `data` is the value codec's JSON, `sizes` its byte segments' lengths.
 */
export interface MessageHeader extends MessageFields {
  type: 'msg';
}

/** The receiver `by` has delivered every message of `of` up to `seq`: its sender may forget them. */
export const AckHeader = z.object({ type: z.literal('ack'), of: Tid, by: Tid, seq: Seq });
export type AckHeader = z.infer<typeof AckHeader>;

/**
 * One piece of a migrating task's image (task-image.ts), `index` of `count`, for attempt
 * `attempt` of `tid`: images go in pieces so that no frame outgrows LIMITS.frameBytes.
 */
export const ImagePartHeader = z.object({
  type: z.literal('part'),
  tid: Tid,
  attempt: z.number().int().min(1).max(1_000_000),
  index: z.number().int().nonnegative(),
  count: z.number().int().min(1).max(Math.ceil(LIMITS.imageBytes / LIMITS.imagePartBytes)),
  sizes: z.tuple([z.number().int().nonnegative().max(LIMITS.imagePartBytes)]),
  /**
   * Which image of the attempt: 0 for its migration image, a sender's count for checkpoint images
   * (host.ts `checkpoint-image`), so that one cut short by a broken connection never mixes with the next.
   */
  image: z.number().int().nonnegative().max(0x7fffffff).optional(),
});
export type ImagePartHeader = z.infer<typeof ImagePartHeader>;

const JsonEnvelopeHeader = z.discriminatedUnion('type', [AckHeader, ImagePartHeader]);
export type EnvelopeHeader = MessageHeader | z.infer<typeof JsonEnvelopeHeader>;

/** A message as the program sees it, before encoding and after decoding. */
export interface TaskMessage {
  from: string;
  to: string;
  tag: number;
  seq: number;
  data: unknown;
}

/**
 * A message as hosts hold it and pass it on: the fields they route and order it by, and its
 * envelope. Its data stays in the envelope from the sending task's worker to the receiving one's:
 * hosts never copy it out, so a large message crosses a page as one buffer.
 */
export interface SealedMessage extends Omit<TaskMessage, 'data'> {
  envelope: Uint8Array;
}

export interface Envelope {
  header: EnvelopeHeader;
  buffers: Uint8Array[];
}

/** Room for the header's own fields (tids, tag, the sizes list) beside the data it carries. */
const FIELDS_BYTES = 4 * 1024 * 1024;
/** The header holds the data's JSON, which LIMITS.messageBytes bounds together with the byte segments. */
export const MAX_ENVELOPE_BYTES = LIMITS.messageBytes + FIELDS_BYTES;

/** Cuts a task image into the frames that carry it. */
export function imageParts(tid: string, attempt: number, image: Uint8Array, id = 0): Uint8Array[] {
  const count = Math.max(1, Math.ceil(image.byteLength / LIMITS.imagePartBytes));
  return Array.from({ length: count }, (_, index) => {
    const piece = image.subarray(index * LIMITS.imagePartBytes, (index + 1) * LIMITS.imagePartBytes);
    return encodeEnvelope({ type: 'part', tid, attempt, index, count, sizes: [piece.byteLength], ...(id ? { image: id } : {}) }, [piece]);
  });
}

export function encodeEnvelope(header: EnvelopeHeader, buffers: readonly Uint8Array[] = []): Uint8Array {
  return header.type === 'msg' ? encodeMessageFrame(header, buffers) : encodeFrame(header, buffers);
}

export type DecodedEnvelope = { ok: true; value: Envelope } | { ok: false; error: { code: 'E_BAD_FRAME' | 'E_TOO_LARGE'; message: string } };

/** Parses an envelope; the byte segments are views into `bytes`, not copies. */
export function decodeEnvelope(bytes: Uint8Array): DecodedEnvelope {
  const bad = (message: string): DecodedEnvelope => ({ ok: false, error: { code: 'E_BAD_FRAME', message } });
  if (bytes.byteLength > MAX_ENVELOPE_BYTES) {
    return { ok: false, error: { code: 'E_TOO_LARGE', message: `envelope over ${MAX_ENVELOPE_BYTES} bytes` } };
  }
  if (isMessageFrame(bytes)) {
    const decoded = decodeMessageFrame(bytes);
    if (!decoded.ok) return bad(decoded.message);
    return { ok: true, value: { header: { type: 'msg', ...decoded.fields }, buffers: decoded.segments } };
  }
  const head = readFrameHeader(bytes);
  if (!head.ok) return bad(`envelope ${head.message}`);
  const parsed = JsonEnvelopeHeader.safeParse(head.raw);
  if (!parsed.success) return bad(`envelope header: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  const header = parsed.data;
  const read = readSegments(bytes, head.offset, header.type === 'ack' ? [] : header.sizes);
  if (!read) return bad('envelope byte segments run past its end');
  if (read.next !== bytes.byteLength) return bad('envelope has trailing bytes');
  return { ok: true, value: { header, buffers: read.segments } };
}

export function encodeMessage(message: TaskMessage): Uint8Array {
  return encodeEncodedMessage(message, encodeValue(message.data));
}

/** A message whose data the sender already encoded (to check its size, see encodedSize). */
export function encodeEncodedMessage(message: Omit<TaskMessage, 'data'>, { json, buffers }: EncodedValue): Uint8Array {
  const header: MessageHeader = {
    type: 'msg',
    from: message.from,
    to: message.to,
    tag: message.tag,
    seq: message.seq,
    data: json,
    sizes: buffers.map((b) => b.byteLength),
  };
  return encodeEnvelope(header, buffers);
}

export function messageFromEnvelope(header: MessageHeader, buffers: readonly Uint8Array[]): TaskMessage {
  return {
    from: header.from,
    to: header.to,
    tag: header.tag,
    seq: header.seq,
    data: decodeValue(header.data, buffers),
  };
}

/** The bytes a message's data takes on the wire, to enforce LIMITS.messageBytes before sending. */
export function encodedSize({ json, buffers }: EncodedValue): number {
  return JSON.stringify(json ?? null).length + buffers.reduce((n, b) => n + b.byteLength, 0);
}

/** A message a host makes itself (an exit notification), sealed like one a task sent. */
export function sealMessage(message: TaskMessage): SealedMessage {
  return { ...fieldsOf(message), envelope: encodeMessage(message) };
}

export type SealedResult = { ok: true; message: SealedMessage } | { ok: false; message: string };

/**
 * The task message `envelope` holds, checked all through — header, data JSON, byte segments —
 * as decoding it would, with nothing copied out.
 */
export function readSealed(envelope: Uint8Array): SealedResult {
  const decoded = decodeEnvelope(envelope);
  if (!decoded.ok) return { ok: false, message: decoded.error.message };
  const { header, buffers } = decoded.value;
  if (header.type !== 'msg') return { ok: false, message: `an envelope of type ${header.type}, not a task message` };
  return sealDecoded(header, buffers, envelope);
}

/** readSealed for an envelope already decoded into `header` and `buffers`. */
export function sealDecoded(header: MessageHeader, buffers: readonly Uint8Array[], envelope: Uint8Array): SealedResult {
  const wrong = checkValue(header.data, buffers);
  if (wrong !== null) return { ok: false, message: `message data: ${wrong}` };
  return { ok: true, message: { ...fieldsOf(header), envelope } };
}

/** The message a sealed envelope holds, as its receiver reads it; null when it holds none. */
export function unsealMessage(envelope: Uint8Array): TaskMessage | null {
  const decoded = decodeEnvelope(envelope);
  if (!decoded.ok || decoded.value.header.type !== 'msg') return null;
  try {
    return messageFromEnvelope(decoded.value.header, decoded.value.buffers);
  } catch {
    return null;
  }
}

function fieldsOf(message: Omit<TaskMessage, 'data'>): Omit<TaskMessage, 'data'> {
  const { from, to, tag, seq } = message;
  return { from, to, tag, seq };
}
