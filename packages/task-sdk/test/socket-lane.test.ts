import { afterEach, describe, expect, it, vi } from 'vitest';
import { type LaneSocket, socketLane } from '../src/runtime/socket-lane.ts';

/** A WebSocket as a worker sees it: the test opens it, drains what it buffered, and delivers to it. */
class FakeSocket implements LaneSocket {
  readyState = 0;
  bufferedAmount = 0;
  binaryType = 'blob';
  sent: Uint8Array[] = [];
  #listeners = new Map<string, ((event: { data?: unknown }) => void)[]>();

  constructor(readonly url: string) {}

  send(data: Uint8Array<ArrayBuffer>): void {
    this.sent.push(data);
    this.bufferedAmount += data.byteLength;
  }

  close(): void {
    this.readyState = 3;
    this.emit('close', {});
  }

  addEventListener(type: string, listener: (event: { data?: unknown }) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener]);
  }

  emit(type: string, event: { data?: unknown }): void {
    for (const listener of this.#listeners.get(type) ?? []) listener(event);
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('socketLane', () => {
  it('looks like a lane: the data channel state names, binary frames, messages and close', () => {
    let socket: FakeSocket | undefined;
    const lane = socketLane('ws://coordinator/lane?token=t', (url) => (socket = new FakeSocket(url)));
    expect(socket!.url).toBe('ws://coordinator/lane?token=t');
    expect(socket!.binaryType).toBe('arraybuffer');
    expect(lane.readyState).toBe('connecting');
    socket!.readyState = 1;
    expect(lane.readyState).toBe('open');

    const got: unknown[] = [];
    let closed = 0;
    lane.addEventListener('message', ({ data }) => got.push(data));
    lane.addEventListener('close', () => closed++);
    const frame = new Uint8Array([1, 2, 3]).buffer;
    socket!.emit('message', { data: frame });
    expect(got).toEqual([frame]);

    lane.send(new Uint8Array(4));
    expect(socket!.sent).toHaveLength(1);
    expect(lane.bufferedAmount).toBe(4);
    lane.close();
    expect(lane.readyState).toBe('closed');
    expect(closed).toBe(1);
  });

  it('closes once, on its close or on an error that left the socket closed (a socket the policy blocks gets no close)', () => {
    let socket: FakeSocket | undefined;
    const lane = socketLane('ws://c/lane?token=t', (url) => (socket = new FakeSocket(url)));
    let closed = 0;
    lane.addEventListener('close', () => closed++);
    socket!.emit('error', {});
    expect(closed).toBe(0);
    socket!.readyState = 3;
    socket!.emit('error', {});
    socket!.emit('close', {});
    expect(closed).toBe(1);
  });

  it('says when what it buffered went below the low threshold, as a data channel would', async () => {
    vi.useFakeTimers();
    let socket: FakeSocket | undefined;
    const lane = socketLane('ws://c/lane?token=t', (url) => (socket = new FakeSocket(url)));
    socket!.readyState = 1;
    lane.bufferedAmountLowThreshold = 100;
    let low = 0;
    lane.addEventListener('bufferedamountlow', () => low++);

    lane.send(new Uint8Array(50));
    await vi.advanceTimersByTimeAsync(20);
    // never above the threshold: nothing to say
    expect(low).toBe(0);

    lane.send(new Uint8Array(200));
    await vi.advanceTimersByTimeAsync(20);
    expect(low).toBe(0);
    socket!.bufferedAmount = 80;
    await vi.advanceTimersByTimeAsync(20);
    expect(low).toBe(1);
    await vi.advanceTimersByTimeAsync(20);
    expect(low).toBe(1);

    // a socket closed while above the threshold stops being watched
    lane.send(new Uint8Array(200));
    lane.close();
    socket!.bufferedAmount = 0;
    await vi.advanceTimersByTimeAsync(20);
    expect(low).toBe(1);
  });
});
