import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROTOCOL_VERSION, decodeHostMessage, encode } from '@webpvm/vm-protocol';
import { WebSocketServer } from 'ws';

/**
 * The baseline, run as its own process: a server that speaks the same host protocol (same frames,
 * same JSON, same zod parsing, same batching) but keeps nothing — no scheduler state, no store,
 * no acks. It measures the transport's ceiling, so the coordinator's figure reads as a ratio to it.
 * Usage: node --import tsx bench/src/null-coordinator.ts <tasks>; prints its port on stdout.
 */
const total = Number(process.argv[2]);
let next = 0;

function lease(count: number) {
  const tasks = [];
  while (tasks.length < count && next < total) {
    const i = next++;
    tasks.push({
      tid: `null.${i}`,
      attempt: 1,
      jobId: 'null',
      parent: null,
      name: null,
      programUrl: '/p.js',
      input: i,
      resume: null,
      seed: i,
      timeoutMs: null,
    });
  }
  return tasks;
}

const server = http.createServer();
const wss = new WebSocketServer({ server });
wss.on('connection', (socket) => {
  socket.on('message', (data) => {
    const decoded = decodeHostMessage(data.toString());
    if (!decoded.ok) return;
    const m = decoded.value;
    const reply = (count: number) => {
      const tasks = lease(count);
      if (tasks.length) socket.send(encode({ type: 'assign', tasks }));
    };
    if (m.type === 'hello') {
      socket.send(
        encode({
          type: 'welcome',
          protocol: PROTOCOL_VERSION,
          hostId: 'h',
          secret: 's',
          volunteerId: 'v',
          heartbeatMs: 5000,
          checkpointIntervalMs: 1000,
          peerId: 'h-peer',
          peerToken: 't',
          boot: 'b',
          coordinators: [],
          iceServers: [],
          iceTransportPolicy: 'all',
        }),
      );
      reply(m.slots * 2);
    }
    if (m.type === 'results') reply(m.items.length);
  });
});
server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
process.on('SIGTERM', () => process.exit(0));
