import type { RawData } from 'ws';

/** A WebSocket frame's bytes as one Buffer, whatever `binaryType` its socket was given. */
export function frameBytes(data: RawData): Buffer {
  return Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}
