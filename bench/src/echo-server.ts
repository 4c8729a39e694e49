import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

/** The raw WebSocket baseline's server: echoes pings, counts a stream and answers "done". */
export async function startEchoServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer();
  const wss = new WebSocketServer({ server, maxPayload: 256 * 1024 * 1024 });
  wss.on('connection', (socket) => {
    let expecting = 0;
    socket.on('message', (data, isBinary) => {
      if (!isBinary) {
        expecting = Number(data.toString());
        return;
      }
      if (expecting > 0) {
        if (--expecting === 0) socket.send('done');
        return;
      }
      socket.send(data, { binary: true });
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
