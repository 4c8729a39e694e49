import type { LaneChannel } from '@webpvm/vm-protocol/lane';

/** What a relay lane uses of a WebSocket (the browser's; tests hand a fake). */
export interface LaneSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  binaryType: string;
  send(data: Uint8Array<ArrayBuffer>): void;
  close(): void;
  addEventListener(type: 'message' | 'close' | 'error', listener: (event: { data?: unknown }) => void): void;
}

/** WebSocket's readyState numbers, as RTCDataChannel names them. */
const STATES = ['connecting', 'open', 'closing', 'closed'] as const;

/**
 * How often a socket with more buffered than its low threshold is looked at again: a WebSocket
 * has no `bufferedamountlow` event, and a lane refills its socket on it.
 */
const DRAIN_POLL_MS = 2;

/**
 * A relay lane's end (vm-protocol lane.ts) as the lane a worker knows: a WebSocket to the
 * coordinator, made to look like the RTCDataChannel of a lane between pages.
 */
export function socketLane(url: string, createSocket: (url: string) => LaneSocket = (u) => new WebSocket(u)): LaneChannel {
  const socket = createSocket(url);
  socket.binaryType = 'arraybuffer';
  const lowListeners: (() => void)[] = [];
  const closeListeners: (() => void)[] = [];
  let polling: ReturnType<typeof setTimeout> | null = null;
  let closed = false;
  const onClosed = (): void => {
    if (closed) return;
    closed = true;
    if (polling !== null) clearTimeout(polling);
    polling = null;
    for (const listener of closeListeners) listener();
  };
  socket.addEventListener('close', onClosed);
  // A socket the worker's policy blocks reports an error and never a close.
  socket.addEventListener('error', () => {
    if (socket.readyState === 3) onClosed();
  });

  const watchDrain = (): void => {
    if (polling !== null || lowListeners.length === 0) return;
    polling = setTimeout(() => {
      polling = null;
      if (socket.readyState !== 1) return;
      if (socket.bufferedAmount > lane.bufferedAmountLowThreshold) watchDrain();
      else for (const listener of lowListeners) listener();
    }, DRAIN_POLL_MS);
  };

  const lane: LaneChannel = {
    get readyState() {
      return STATES[socket.readyState] ?? 'closed';
    },
    get bufferedAmount() {
      return socket.bufferedAmount;
    },
    bufferedAmountLowThreshold: 0,
    get binaryType() {
      return socket.binaryType;
    },
    set binaryType(type: string) {
      socket.binaryType = type;
    },
    send(data) {
      socket.send(data);
      if (socket.bufferedAmount > lane.bufferedAmountLowThreshold) watchDrain();
    },
    close() {
      socket.close();
    },
    addEventListener(type, listener) {
      if (type === 'bufferedamountlow') lowListeners.push(() => listener({}));
      else if (type === 'message') socket.addEventListener('message', (event) => listener({ data: event.data }));
      else closeListeners.push(() => listener({}));
    },
  };
  return lane;
}
