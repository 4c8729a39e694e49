import { PROTOCOL_VERSION, RELAY_LANE_PATH, type TaskOutcome, decodeCoordinatorMessage, encode } from '@webpvm/vm-protocol';
import fc from 'fast-check';
import WebSocket from 'ws';
import { PEERJS_SOCKET_PATH } from '../../src/peer-signalling.ts';
import { hostFrames } from './frame-fuzz.ts';

/** Frames a fuzzing connection sends before it hangs up and another takes its place. */
const FRAMES_PER_CONNECTION = 300;
const CONNECTIONS_AT_ONCE = 6;

export interface AttackOptions {
  /** The coordinator's http(s) base URL. */
  url: string;
  /** An admin token, for the requests that need one (half of them carry it). */
  token: string;
  /** The job under fire: its tids are what well-formed frames name. */
  jobId: string;
  /** Frames thrown at `/ws`, over connections of FRAMES_PER_CONNECTION, six at a time. */
  frames: number;
  /** Fuzzed REST requests. */
  requests: number;
}

export interface AttackOutcome {
  /** `E_INTERNAL` answers: a handler threw on what a connection sent (the gateway caught it). */
  internalErrors: string[];
  /** REST requests answered with a 5xx. */
  serverErrors: string[];
}

const open = (url: string) =>
  new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
    socket.once('unexpected-response', () => reject(new Error('refused')));
  });

/** An honest host: squares every input it is given. */
export async function honestHost(url: string, volunteer: string): Promise<WebSocket> {
  const socket = await open(`${url.replace('http', 'ws')}/ws`);
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

/** One fuzzing connection: maybe a valid hello first (to reach the handlers behind it), then its frames; returns the E_INTERNAL answers. */
async function fuzzConnection(wsUrl: string, frames: (string | Uint8Array)[], greet: boolean): Promise<string[]> {
  const internal: string[] = [];
  let socket: WebSocket;
  try {
    socket = await open(wsUrl);
  } catch {
    return internal;
  }
  socket.on('error', () => {});
  socket.on('message', (data, binary) => {
    if (!binary && data.toString().includes('"E_INTERNAL"')) internal.push(data.toString());
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
  return internal;
}

/** Requests with fuzzed paths, methods, tokens and bodies. */
const requests = fc.record({
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'),
  path: fc.oneof(fc.constantFrom('/api/jobs', '/api/hosts', '/api/events', '/api/tokens', '/healthz', '/metrics'), fc.string({ maxLength: 30 }).map((s) => `/api/jobs/${encodeURIComponent(s)}`), fc.string({ maxLength: 20 }).map((s) => `/api/${encodeURIComponent(s)}`)),
  auth: fc.boolean(),
  body: fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 100 }), fc.record({ program: fc.constantFrom('export default (ctx, x) => x', ''), inputs: fc.array(fc.jsonValue(), { maxLength: 3 }), replicas: fc.integer({ min: -1, max: 20 }), quorum: fc.integer({ min: -1, max: 20 }), adaptive: fc.boolean() }).map((v) => JSON.stringify(v))),
});

/**
 * A stranger's worst, all at once: mutated and random frames at `/ws` (three connections in four
 * say hello first), junk at `/lane` and `/peerjs` under made-up tokens and ids, and fuzzed REST
 * requests. Deterministic: the same options throw the same frames.
 */
export async function attack(options: AttackOptions): Promise<AttackOutcome> {
  const { url, token } = options;
  const wsUrl = `${url.replace('http', 'ws')}/ws`;
  const outcome: AttackOutcome = { internalErrors: [], serverErrors: [] };
  const arbitrary = hostFrames(options.jobId);
  const connections = Math.ceil(options.frames / FRAMES_PER_CONNECTION);
  let next = 0;
  const fuzzers = Array.from({ length: CONNECTIONS_AT_ONCE }, async () => {
    while (next < connections) {
      const mine = next++;
      outcome.internalErrors.push(...(await fuzzConnection(wsUrl, fc.sample(arbitrary, { numRuns: FRAMES_PER_CONNECTION, seed: mine }), mine % 4 !== 0)));
    }
  });
  const requestFuzz = (async () => {
    for (const r of fc.sample(requests, { numRuns: options.requests, seed: 11 })) {
      const body = r.method === 'GET' || r.method === 'DELETE' ? undefined : r.body;
      const response = await fetch(`${url}${r.path}`, {
        method: r.method,
        headers: { ...(r.auth ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body }),
      });
      await response.body?.cancel();
      if (response.status >= 500) outcome.serverErrors.push(`${r.method} ${r.path}: ${response.status}`);
    }
  })();
  const sideDoors = (async () => {
    const junk = fc.sample(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 100 })), { numRuns: 4_000, seed: 3 });
    const doors = fc.sample(fc.tuple(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 })), { numRuns: 200, seed: 5 });
    for (const [i, [a, b]] of doors.entries()) {
      const door = i % 2 ? `${RELAY_LANE_PATH}?token=${encodeURIComponent(a)}` : `${PEERJS_SOCKET_PATH}?key=peerjs&id=${encodeURIComponent(a)}&token=${encodeURIComponent(b)}`;
      await fuzzConnection(`${url.replace('http', 'ws')}${door}`, junk.slice((i * 20) % junk.length, ((i * 20) % junk.length) + 20), false);
    }
  })();
  await Promise.all([...fuzzers, requestFuzz, sideDoors]);
  return outcome;
}
