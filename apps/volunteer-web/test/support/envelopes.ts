import { decodeEnvelope, type EnvelopeHeader } from '@webpvm/vm-protocol';

export function headerOf(bytes: Uint8Array): EnvelopeHeader {
  const decoded = decodeEnvelope(bytes);
  if (!decoded.ok) throw new Error(decoded.error.message);
  return decoded.value.header;
}

/** An envelope in a word: `from>to:seq` for a message, `ack of>by:seq`, or `part tid`. */
export const describeHeader = (h: EnvelopeHeader): string =>
  h.type === 'msg' ? `${h.from}>${h.to}:${h.seq}` : h.type === 'ack' ? `ack ${h.of}>${h.by}:${h.seq}` : `part ${h.tid}`;

export const describeEnvelope = (bytes: Uint8Array): string => describeHeader(headerOf(bytes));

/** An image part frame (vm-protocol `imageParts`): its header and its piece of the image, or null for any other envelope. */
export const partOf = (bytes: Uint8Array) => {
  const decoded = decodeEnvelope(bytes);
  return decoded.ok && decoded.value.header.type === 'part' ? { header: decoded.value.header, piece: decoded.value.buffers[0]! } : null;
};
