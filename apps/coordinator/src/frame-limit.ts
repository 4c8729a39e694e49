import type { WebSocket } from 'ws';

/** What `ws` keeps of a connection's frame limit: the Receiver reads `_maxPayload` for every frame header. */
interface ReceiverLimit {
  _receiver?: { _maxPayload?: unknown } | null;
}

/**
 * Sets the largest frame `socket` accepts from now on; a larger one closes it (1009) before its
 * payload is buffered. The server's `maxPayload` must admit task messages of up to 96 MiB, but a
 * socket that has not said who it is gets a few kilobytes: `ws` has no public way to change one
 * connection's limit, so this sets the field its Receiver checks, and says whether it could
 * (host-gateway.test.ts fails if a `ws` upgrade moves it).
 */
export function limitFrames(socket: WebSocket, bytes: number): boolean {
  const receiver = (socket as unknown as ReceiverLimit)._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number') return false;
  receiver._maxPayload = bytes;
  return true;
}
