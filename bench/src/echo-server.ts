import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * The raw WebSocket baselines' server. At `/` it echoes every message: a stream crosses two
 * WebSocket legs through Node, page → Node → page, as webpvm's relay does (page → coordinator →
 * page), within one tab. At `/relay?side=a` and `/relay?side=b` it hands each message of one side
 * to the latest socket of the other: the relay's shape, tab to tab, with nothing of webpvm's.
 */
export async function startEchoServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer();
  const wss = new WebSocketServer({ server, maxPayload: 256 * 1024 * 1024 });
  const sides = new Map<string, WebSocket>();
  wss.on('connection', (socket, request) => {
    const url = new URL(request.url ?? '/', 'ws://bench');
    const side = url.pathname === '/relay' ? url.searchParams.get('side') : null;
    if (side !== 'a' && side !== 'b') {
      socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
      return;
    }
    sides.set(side, socket);
    const other = side === 'a' ? 'b' : 'a';
    socket.on('message', (data, isBinary) => sides.get(other)?.send(data, { binary: isBinary }));
    socket.on('close', () => {
      if (sides.get(side) === socket) sides.delete(side);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        server.close(() => resolve());
      }),
  };
}
