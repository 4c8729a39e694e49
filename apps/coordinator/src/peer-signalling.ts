import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import express from 'express';
import { ExpressPeerServer } from 'peer';
import { WebSocketServer } from 'ws';

/** Where PeerJS clients open their signalling WebSocket (`path: '/peerjs'` on the client). */
export const PEERJS_SOCKET_PATH = '/peerjs/peerjs';

/**
 * The coordinator's own PeerServer, which signals WebRTC data channels between hosts. Its
 * WebSocket shares the coordinator's port; an upgrade is accepted only for a peer id the
 * coordinator issued to a host connected right now, with the token issued with it, so no one else
 * can use it as a relay or take up another host's id while that host's signalling is away.
 */
export function mountPeerServer(server: Server, isIssued: (peerId: string, token: string) => boolean) {
  let wss: WebSocketServer | null = null;
  const app = express();
  app.use(
    '/peerjs',
    ExpressPeerServer(server, {
      path: '/',
      createWebSocketServer: () => (wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 })),
    }),
  );
  return {
    handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
      const query = new URL(request.url ?? '/', 'http://x').searchParams;
      const [id, token] = [query.get('id'), query.get('token')];
      if (!wss || !id || !token || !isIssued(id, token)) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n', () => socket.destroy());
        return;
      }
      const target = wss;
      target.handleUpgrade(request, socket, head, (ws) => target.emit('connection', ws, request));
    },
    /** Signalling sockets are not the HTTP server's: they must be ended for it to close. */
    close(): void {
      for (const client of wss?.clients ?? []) client.terminate();
      wss?.close();
    },
  };
}
