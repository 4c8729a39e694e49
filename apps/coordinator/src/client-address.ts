import type { IncomingMessage } from 'node:http';

/**
 * The network address a request came from: its socket's peer, or — behind a proxy the operator
 * vouches for (WEBPVM_TRUST_PROXY=1) — the address that proxy saw, which it appended last to
 * `X-Forwarded-For`. Earlier entries are the client's own word and are not taken.
 */
export function clientAddress(request: IncomingMessage, trustProxy: boolean): string {
  const peer = request.socket.remoteAddress ?? '';
  if (!trustProxy) return peer;
  const forwarded = request.headers['x-forwarded-for'];
  const last = (Array.isArray(forwarded) ? forwarded.at(-1) : forwarded)?.split(',').at(-1)?.trim();
  return last || peer;
}
