import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ErrorBody, RELAY_LANE_PATH, encodeEnvelope, encodeMessage, lanePieces } from '@webpvm/vm-protocol';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createMetrics } from '../src/metrics.ts';
import { ByteBudget } from '../src/byte-budget.ts';
import { RelayLanes } from '../src/relay-lanes.ts';
import { FakeHost } from './support/scheduler-harness.ts';

const open: { lanes: RelayLanes; server: http.Server; sockets: WebSocket[] }[] = [];

afterEach(async () => {
  for (const { lanes, server, sockets } of open.splice(0)) {
    for (const s of sockets) s.terminate();
    lanes.close();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** Relay lanes behind a real HTTP server; host `a` runs job j's sender tasks, host `b` its receivers. */
async function setup(options: { connectMs?: number; endOf?: (hostId: string, from: string, to: string) => ErrorBody | null } = {}) {
  const links = { a: new FakeHost(), b: new FakeHost() };
  const metrics = createMetrics();
  const lanes = new RelayLanes({
    log: pino({ level: 'silent' }),
    metrics,
    endOf: (hostId, from, to) => options.endOf?.(hostId, from, to) ?? { hostId: 'b', link: links.b },
    ...(options.connectMs ? { connectMs: options.connectMs } : {}),
  });
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => lanes.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sockets: WebSocket[] = [];
  open.push({ lanes, server, sockets });
  const url = (token: string) => `ws://127.0.0.1:${(server.address() as AddressInfo).port}${RELAY_LANE_PATH}?token=${token}`;
  /** A worker's socket: resolves once open, with what it received and how it closed. */
  const connect = async (token: string) => {
    const socket = new WebSocket(url(token));
    sockets.push(socket);
    const received: Buffer[] = [];
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    socket.on('message', (data) => received.push(data as Buffer));
    await new Promise<void>((resolve, reject) => {
      socket.on('open', resolve);
      socket.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      socket.on('error', reject);
    });
    return { socket, received, closed };
  };
  const metric = async (name: 'laneFrames' | 'lanesOpen') => (await metrics[name].get()).values[0]?.value;
  return { lanes, links, connect, metric };
}

const message = (seq: number, from = 'jobj.0', to = 'jobj.1') => encodeMessage({ from, to, tag: 1, seq, data: new Uint8Array(1000).fill(seq) });
const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(check()).toBe(true);
};

describe('RelayLanes', () => {
  it('gives each host its end and pipes what the sender writes, in order, to the receiver', async () => {
    const { lanes, links, connect, metric } = await setup();
    lanes.request('a', links.a, 'jobj.0', 'jobj.1');
    expect(links.a.sent).toEqual([{ type: 'lane', end: 'out', from: 'jobj.0', to: 'jobj.1', token: expect.stringMatching(/^[0-9a-f]{32}$/) }]);
    expect(links.b.sent).toEqual([{ type: 'lane', end: 'in', from: 'jobj.0', to: 'jobj.1', token: expect.stringMatching(/^[0-9a-f]{32}$/) }]);

    const out = await connect(links.a.token('out'));
    // written before the receiver's worker connects: it waits in the sender's socket
    for (let seq = 1; seq <= 3; seq++) out.socket.send(message(seq));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const into = await connect(links.b.token('in'));
    for (let seq = 4; seq <= 5; seq++) out.socket.send(message(seq));
    await until(() => into.received.length === 5);
    expect(into.received.map((b) => new Uint8Array(b))).toEqual([1, 2, 3, 4, 5].map((seq) => message(seq)));
    expect(await metric('laneFrames')).toBe(5);
    expect(await metric('lanesOpen')).toBe(1);
    expect(lanes.open).toBe(1);
    into.socket.close();
    await out.closed;
    expect(await metric('lanesOpen')).toBe(0);
  });

  it('reads the sender no faster than its host’s bytes per second, and delivers everything in order all the same', async () => {
    const { lanes, links, connect } = await setup();
    // 1 MB a second, spent already: 300 KB take 300 ms, less what the socket had read before it paused (64 KiB a read)
    const budget = new ByteBudget(1_000_000, 1_000_000);
    budget.spend(1_000_000);
    lanes.request('a', links.a, 'jobj.0', 'jobj.1', [budget]);
    const out = await connect(links.a.token('out'));
    const into = await connect(links.b.token('in'));
    const big = (seq: number) => encodeMessage({ from: 'jobj.0', to: 'jobj.1', tag: 1, seq, data: new Uint8Array(10_000).fill(seq) });
    const start = Date.now();
    for (let seq = 1; seq <= 30; seq++) out.socket.send(big(seq));
    await until(() => into.received.length === 30);
    expect(Date.now() - start).toBeGreaterThanOrEqual(150);
    expect(into.received.map((b) => new Uint8Array(b))).toEqual(Array.from({ length: 30 }, (_, i) => big(i + 1)));
  });

  it('closes both ends when the sender writes what is not a message of its pair', async () => {
    for (const bad of [
      message(1, 'jobj.0', 'jobj.2'),
      message(1, 'jobj.5', 'jobj.1'),
      encodeEnvelope({ type: 'ack', of: 'jobj.0', by: 'jobj.1', seq: 1 }),
      new Uint8Array([1, 2, 3]),
    ]) {
      const { lanes, links, connect } = await setup();
      lanes.request('a', links.a, 'jobj.0', 'jobj.1');
      const out = await connect(links.a.token('out'));
      const into = await connect(links.b.token('in'));
      out.socket.send(bad);
      expect(await out.closed).toBe(1000);
      expect(await into.closed).toBe(1000);
      expect(into.received).toEqual([]);
      expect(lanes.open).toBe(0);
    }
  });

  it('pipes a large message of its pair in pieces, and closes on pieces of another pair, running past their envelope, or cut short by a whole frame', async () => {
    const big = (seq: number, from = 'jobj.0', to = 'jobj.1') => encodeMessage({ from, to, tag: 1, seq, data: new Uint8Array(300_000).fill(seq) });
    {
      const { lanes, links, connect, metric } = await setup();
      lanes.request('a', links.a, 'jobj.0', 'jobj.1');
      const out = await connect(links.a.token('out'));
      const into = await connect(links.b.token('in'));
      const frames = [...lanePieces(big(1)), message(2), ...lanePieces(big(3))];
      for (const frame of frames) out.socket.send(frame);
      await until(() => into.received.length === frames.length);
      // compared as buffers: toEqual walks a typed array element by element
      expect(into.received.every((b, i) => Buffer.compare(b, frames[i]!) === 0)).toBe(true);
      expect(await metric('laneFrames')).toBe(frames.length);
    }
    const [first, second] = lanePieces(big(1));
    for (const bad of [
      lanePieces(big(1, 'jobj.0', 'jobj.2')),
      [first!, first!, first!],
      [first!, message(2)],
      [first!, second!, lanePieces(big(2))[0]!],
    ]) {
      const { lanes, links, connect } = await setup();
      lanes.request('a', links.a, 'jobj.0', 'jobj.1');
      const out = await connect(links.a.token('out'));
      const into = await connect(links.b.token('in'));
      for (const frame of bad) out.socket.send(frame);
      expect(await out.closed).toBe(1000);
      expect(await into.closed).toBe(1000);
      expect(lanes.open).toBe(0);
    }
  });

  it('closes the sending end when the receiving one closes (the receiver moved or ended)', async () => {
    const { lanes, links, connect } = await setup();
    lanes.request('a', links.a, 'jobj.0', 'jobj.1');
    const out = await connect(links.a.token('out'));
    const into = await connect(links.b.token('in'));
    into.socket.close();
    expect(await out.closed).toBe(1000);
    expect(lanes.open).toBe(0);
  });

  it('refuses an unknown token and a token already used, before the upgrade', async () => {
    const { lanes, links, connect } = await setup();
    await expect(connect('0'.repeat(32))).rejects.toThrow('HTTP 403');
    await expect(connect('nonsense')).rejects.toThrow('HTTP 403');
    lanes.request('a', links.a, 'jobj.0', 'jobj.1');
    await connect(links.a.token('out'));
    await expect(connect(links.a.token('out'))).rejects.toThrow('HTTP 403');
  });

  it('tells the asking host why there is no lane, and takes no more than its cap', async () => {
    const { lanes, links } = await setup({
      endOf: (_host, _from, to) => (to === 'jobj.9' ? { code: 'E_CONFLICT', message: 'jobj.9 is not running on a connected host now' } : null),
    });
    lanes.request('a', links.a, 'jobj.0', 'jobj.9');
    expect(links.a.sent).toEqual([{ type: 'lane-refused', from: 'jobj.0', to: 'jobj.9' }]);
    expect(links.b.sent).toEqual([]);

    const capped = new RelayLanes({ log: pino({ level: 'silent' }), endOf: () => ({ hostId: 'b', link: links.b }), maxLanesPerHost: 1 });
    const asker = new FakeHost();
    capped.request('a', asker, 'jobj.0', 'jobj.1');
    capped.request('a', asker, 'jobj.0', 'jobj.2');
    expect(asker.sent.map((m) => m.type)).toEqual(['lane', 'lane-refused']);
    capped.close();
  });

  it('closes a lane its receiving host declined, one not connected in time, and those of a host that left', async () => {
    const { lanes, links, connect } = await setup({ connectMs: 100 });
    lanes.request('a', links.a, 'jobj.0', 'jobj.1');
    const out = await connect(links.a.token('out'));
    lanes.declined(links.a, links.b.token('in'));
    expect(lanes.open).toBe(1);
    lanes.declined(links.b, links.b.token('in'));
    expect(await out.closed).toBe(1000);

    lanes.request('a', links.a, 'jobj.0', 'jobj.2');
    const late = await connect(links.a.token('out'));
    expect(await late.closed).toBe(1000);

    links.a.sent.length = 0;
    links.b.sent.length = 0;
    lanes.request('a', links.a, 'jobj.0', 'jobj.3');
    const left = await connect(links.a.token('out'));
    await connect(links.b.token('in'));
    lanes.hostGone(links.b);
    expect(await left.closed).toBe(1000);
    expect(lanes.open).toBe(0);
  });
});
