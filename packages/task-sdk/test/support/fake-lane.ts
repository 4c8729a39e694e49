import { encodeMessage, type LaneChannel } from '@webpvm/vm-protocol';

/** One end of a lane as a worker sees it: what the task writes is recorded, and the test writes as the other end. */
export class FakeLane implements LaneChannel {
  readyState = 'open';
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  binaryType = 'blob';
  sent: Uint8Array[] = [];
  #listeners = new Map<string, ((event: { data?: unknown }) => void)[]>();

  send(data: Uint8Array<ArrayBuffer>): void {
    this.sent.push(data);
  }

  close(): void {
    if (this.readyState === 'closed') return;
    this.readyState = 'closed';
    for (const listener of this.#listeners.get('close') ?? []) listener({});
  }

  addEventListener(type: 'message' | 'close' | 'bufferedamountlow', listener: (event: { data?: unknown }) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener]);
  }

  /** What this end buffered went out: it has room again. */
  drained(): void {
    this.bufferedAmount = 0;
    for (const listener of this.#listeners.get('bufferedamountlow') ?? []) listener({});
  }

  /** A frame arrives on this end as it is: a lane's piece of a large envelope, say. */
  writeFrame(frame: Uint8Array): void {
    for (const listener of this.#listeners.get('message') ?? []) listener({ data: frame.slice().buffer });
  }

  /** A message of `from` to `to` arrives on this end. */
  write(from: string, seq: number, data: unknown, to = 'job1.0'): void {
    const bytes = encodeMessage({ from, to, tag: 1, seq, data });
    for (const listener of this.#listeners.get('message') ?? []) listener({ data: bytes.slice().buffer });
  }
}
