import type { RawData } from 'ws';

/** A WebSocket frame's size in bytes, without putting its pieces together. */
export function frameLength(data: RawData): number {
  return Array.isArray(data) ? data.reduce((n, piece) => n + piece.byteLength, 0) : data.byteLength;
}

/** A WebSocket frame's bytes as one Buffer, whatever `binaryType` its socket was given. */
export function frameBytes(data: RawData): Buffer {
  return Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}
