import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { PROTOCOL_VERSION, RELAY_LANE_PATH, type TaskOutcome, decodeCoordinatorMessage, encode } from '@webpvm/vm-protocol';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig, startCoordinator } from '../src/coordinator.ts';
import { PEERJS_SOCKET_PATH } from '../src/peer-signalling.ts';
import { hostFrames } from './support/frame-fuzz.ts';

/** Frames thrown at `/ws` in `npm test`; `FUZZ_FRAMES` raises it for a soak. */
const FRAMES = Number(process.env.FUZZ_FRAMES ?? 200_000);
/** Frames a fuzzing connection sends before it hangs up and another takes its place. */
const FRAMES_PER_CONNECTION = 300;
const CONNECTIONS_AT_ONCE = 6;
const token = 'wpvm_fuzz';
v8.setFlagsFromString('--expose-gc');
/** The collector, to weigh what the attack left behind rather than garbage not yet collected. */
const collect = vm.runInNewContext('gc') as () => void;
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

const open = (url: string) =>
  new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
    socket.once('unexpected-response', () => reject(new Error('refused')));
  });

/** An honest host: squares every input it is given. */
async function honestHost(wsUrl: string, volunteer: string): Promise<WebSocket> {
  const socket = await open(wsUrl);
  socket.on('message', (data, binary) => {
    if (binary) return;
    const decoded = decodeCoordinatorMessage(data.toString());
    if (!decoded.ok || decoded.value.type !== 'assign') return;
    const items: TaskOutcome[] = decoded.value.tasks.map((t) => ({ tid: t.tid, attempt: t.attempt, ok: true, value: (t.input as number) ** 2 }));
    socket.send(encode({ type: 'results', items }));
  });
  socket.send(encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 4, running: [], userAgent: 'honest', volunteer }));
  return socket;
}

/** Answers `E_INTERNAL`: a handler that threw on what a fuzzing connection sent (the gateway catches it). */
const internalErrors: string[] = [];

/** One fuzzing connection: maybe a valid hello first (to reach the handlers behind it), then its frames. */
async function fuzzConnection(wsUrl: string, frames: (string | Uint8Array)[], greet: boolean): Promise<void> {
  let socket: WebSocket;
  try {
    socket = await open(wsUrl);
  } catch {
    return;
  }
  socket.on('error', () => {});
  socket.on('message', (data, binary) => {
    if (!binary && data.toString().includes('"E_INTERNAL"')) internalErrors.push(data.toString());
  });
  if (greet) socket.send(encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 2, running: [], userAgent: 'fuzz', volunteer: `fuzz-volunteer-${frames.length}-${Math.random()}`.padEnd(32, 'x').replace(/[^A-Za-z0-9_-]/g, '_') }));
  for (const frame of frames) {
    if (socket.readyState !== WebSocket.OPEN) break;
    socket.send(frame);
  }
  await new Promise<void>((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve();
    socket.once('close', () => resolve());
    socket.close();
  });
}

/** Requests with fuzzed paths, methods, tokens and bodies. */
const requests = fc.record({
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'),
  path: fc.oneof(fc.constantFrom('/api/jobs', '/api/hosts', '/api/events', '/api/tokens', '/healthz', '/metrics'), fc.string({ maxLength: 30 }).map((s) => `/api/jobs/${encodeURIComponent(s)}`), fc.string({ maxLength: 20 }).map((s) => `/api/${encodeURIComponent(s)}`)),
  auth: fc.boolean(),
  body: fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 100 }), fc.record({ program: fc.constantFrom('export default (ctx, x) => x', ''), inputs: fc.array(fc.jsonValue(), { maxLength: 3 }), replicas: fc.integer({ min: -1, max: 20 }), quorum: fc.integer({ min: -1, max: 20 }), adaptive: fc.boolean() }).map((v) => JSON.stringify(v))),
});

describe('fuzzing the coordinator while a job runs', () => {
  it(`stays up, throws in no handler, keeps its memory, and finishes the job exactly under ${FRAMES.toLocaleString('en')} hostile host frames, junk on /lane and /peerjs, and random requests`, async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-fuzz-'));
    const coordinator = await startCoordinator(loadConfig({ PORT: '0', WEBPVM_DATA: dataDir, WEBPVM_ADMIN_TOKEN: token, WEBPVM_LOG_LEVEL: 'silent' }));
    stops.push(async () => {
      await coordinator.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });
    const { url } = coordinator;
    const wsUrl = `${url.replace('http', 'ws')}/ws`;
    const api = (method: string, route: string, body?: string, auth = true) =>
      fetch(`${url}${route}`, { method, headers: { ...(auth ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body }) });
    const total = 600;
    const submitted = await api('POST', '/api/jobs', JSON.stringify({ name: 'under fire', program: 'export default (ctx, x) => x * x', inputs: Array.from({ length: total }, (_, i) => i) }));
    const { id } = (await submitted.json()) as { id: string };

    collect();
    const heapBefore = process.memoryUsage().heapUsed;
    const arbitrary = hostFrames(id);
    const connections = Math.ceil(FRAMES / FRAMES_PER_CONNECTION);
    let next = 0;
    const fuzzers = Array.from({ length: CONNECTIONS_AT_ONCE }, async () => {
      while (next < connections) {
        const mine = next++;
        // three connections in four say hello first, so that their frames reach the handlers behind it
        await fuzzConnection(wsUrl, fc.sample(arbitrary, { numRuns: FRAMES_PER_CONNECTION, seed: mine }), mine % 4 !== 0);
      }
    });
    const requestFuzz = (async () => {
      for (const r of fc.sample(requests, { numRuns: 400, seed: 11 })) {
        const response = await api(r.method, r.path, r.method === 'GET' || r.method === 'DELETE' ? undefined : r.body, r.auth);
        await response.body?.cancel();
        expect(response.status, `${r.method} ${r.path}`).toBeLessThan(500);
      }
    })();
    // relay lanes and PeerJS signalling: made-up tokens and ids, then whatever comes to hand
    const sideDoors = (async () => {
      const junk = fc.sample(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 100 })), { numRuns: 4_000, seed: 3 });
      const doors = fc.sample(fc.tuple(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 })), { numRuns: 200, seed: 5 });
      for (const [i, [a, b]] of doors.entries()) {
        const door = i % 2 ? `${RELAY_LANE_PATH}?token=${encodeURIComponent(a)}` : `${PEERJS_SOCKET_PATH}?key=peerjs&id=${encodeURIComponent(a)}&token=${encodeURIComponent(b)}`;
        await fuzzConnection(`${url.replace('http', 'ws')}${door}`, junk.slice((i * 20) % junk.length, ((i * 20) % junk.length) + 20), false);
      }
    })();
    // honest hosts join while the attack is under way
    const honest = [await honestHost(wsUrl, 'h'.repeat(40)), await honestHost(wsUrl, 'i'.repeat(40))];
    await Promise.all([...fuzzers, requestFuzz, sideDoors]);

    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(internalErrors).toEqual([]);
    let state = '';
    for (let i = 0; i < 200 && state !== 'done'; i++) {
      state = ((await (await api('GET', `/api/jobs/${id}`)).json()) as { state: string }).state;
      if (state !== 'done') await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(state).toBe('done');
    const { results } = (await (await api('GET', `/api/jobs/${id}/results`)).json()) as { results: unknown[] };
    expect(results).toEqual(Array.from({ length: total }, (_, i) => i * i));
    for (const socket of honest) socket.close();
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const counted = [...metrics.matchAll(/^webpvm_host_(?:frames_in_total\{[^}]*\}|bad_frames_total) (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    // most of the attack reached the coordinator (the rest went down with connections it closed)
    expect(counted).toBeGreaterThan(FRAMES / 2);
    // what the attack left behind: the coordinator's heap grew by less than 32 MiB
    await new Promise((resolve) => setTimeout(resolve, 100));
    collect();
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
  }, 240_000);
});
