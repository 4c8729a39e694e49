import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * The bare baseline of bench:throughput, run as its own process: plain Web Workers fed over one
 * WebSocket per tab by a server that keeps nothing about tasks. The bench opens tabs on `/` (a
 * blank page), connects each (bare-baseline.ts: one WebSocket to `/ws`, one Worker from
 * `/worker.js`) and drives runs over HTTP:
 *
 * - `POST /start {k, batch, inflight, total?, check?}`: sends every connected tab `inflight`
 *   batches of `batch` consecutive items `x`, and a new one for each batch of results that comes
 *   back, until `total` items have gone out (no limit without one). `k = 0`: each item is x → x²;
 *   `k > 0`: each is `spin(k, x)` (bench/programs/spin.js). Results are checked as they arrive:
 *   every square, and the spins named in `check` (`{x: value}`, computed by the bench in Node).
 * - `GET /count`: `{connected, done, errors, firstError, t, lastAt}` — items completed so far, ms
 *   since the start, ms from the start to the latest batch of results.
 * - `POST /stop`: sends no more; answers once every batch out has come back.
 *
 * A frame is JSON text: `{"s": first x, "k": k, "x": [x…]}` out, `{"s": first x, "v": [result…]}`
 * back; the page hands it to its worker and the worker's answer to the socket as they are, the
 * worker alone parses. Usage: node --import tsx bench/src/bare-server.ts; prints its port on stdout.
 */
const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const spinSource = fs
  .readFileSync(path.join(benchDir, 'programs/spin.js'), 'utf8')
  .replace(/^export default .*$/m, '')
  .replace(/^export /gm, '');

const WORKER_JS = `${spinSource}
onmessage = (e) => {
  if (typeof e.data !== 'string') {
    // calibration: {n} → how long spin(n, 1) took, in ms
    const started = performance.now();
    const h = spin(e.data.n, 1);
    postMessage({ ms: performance.now() - started, h });
    return;
  }
  const b = JSON.parse(e.data);
  const x = b.x;
  const v = new Array(x.length);
  if (b.k === 0) for (let i = 0; i < x.length; i++) v[i] = x[i] * x[i];
  else for (let i = 0; i < x.length; i++) v[i] = spin(b.k, x[i]);
  postMessage(JSON.stringify({ s: b.s, v }));
};
`;
const PAGE_HTML = '<!doctype html><meta charset="utf-8"><title>bare baseline</title><p>bare baseline: plain Web Workers fed over a WebSocket</p>\n';

interface Run {
  k: number;
  batch: number;
  total: number;
  check: Record<string, number>;
  next: number;
  done: number;
  errors: number;
  firstError: string | null;
  feeding: boolean;
  startedAt: number;
  lastAt: number;
}

let run: Run | null = null;
/** Batches sent and not yet answered, by socket: what the transport has in flight, not task state. */
const outstanding = new Map<WebSocket, number>();

function feed(socket: WebSocket): void {
  if (!run || !run.feeding || run.next >= run.total) return;
  const count = Math.min(run.batch, run.total - run.next);
  const x = Array.from({ length: count }, (_, i) => run!.next + i);
  socket.send(JSON.stringify({ s: run.next, k: run.k, x }));
  run.next += count;
  outstanding.set(socket, (outstanding.get(socket) ?? 0) + 1);
}

function results(socket: WebSocket, text: string): void {
  outstanding.set(socket, (outstanding.get(socket) ?? 1) - 1);
  if (!run) return;
  const { s, v } = JSON.parse(text) as { s: number; v: number[] };
  for (let i = 0; i < v.length; i++) {
    const x = s + i;
    const expected = run.k === 0 ? x * x : run.check[x];
    if (expected !== undefined && v[i] !== expected) {
      run.errors++;
      run.firstError ??= `x = ${x}: got ${v[i]}, expected ${expected}`;
    }
  }
  run.done += v.length;
  run.lastAt = performance.now();
  feed(socket);
}

const body = (request: http.IncomingMessage) =>
  new Promise<any>((resolve) => {
    let text = '';
    request.on('data', (chunk) => (text += chunk));
    request.on('end', () => resolve(text ? JSON.parse(text) : {}));
  });

const server = http.createServer(async (request, response) => {
  const json = (status: number, value: unknown) => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(value));
  };
  const route = `${request.method} ${new URL(request.url ?? '/', 'http://bare').pathname}`;
  if (route === 'GET /') {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(PAGE_HTML);
  } else if (route === 'GET /worker.js') {
    response.writeHead(200, { 'content-type': 'text/javascript' });
    response.end(WORKER_JS);
  } else if (route === 'POST /start') {
    const { k = 0, batch = 100, inflight = 2, total = null, check = {} } = await body(request);
    if (run) return json(409, { error: 'a run is going on' });
    const now = performance.now();
    run = { k, batch, total: total ?? Infinity, check, next: 0, done: 0, errors: 0, firstError: null, feeding: true, startedAt: now, lastAt: now };
    for (const socket of outstanding.keys()) for (let i = 0; i < inflight; i++) feed(socket);
    json(200, { connected: outstanding.size });
  } else if (route === 'GET /count') {
    const now = performance.now();
    json(200, {
      connected: outstanding.size,
      done: run?.done ?? 0,
      errors: run?.errors ?? 0,
      firstError: run?.firstError ?? null,
      t: run ? now - run.startedAt : 0,
      lastAt: run ? run.lastAt - run.startedAt : 0,
    });
  } else if (route === 'POST /stop') {
    if (!run) return json(200, { done: 0, errors: 0 });
    run.feeding = false;
    const deadline = Date.now() + 60_000;
    while ([...outstanding.values()].some((n) => n > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const { done, errors, firstError } = run;
    run = null;
    json(200, { done, errors, firstError, drained: Date.now() < deadline });
  } else {
    json(404, { error: route });
  }
});

const wss = new WebSocketServer({ server, path: '/ws' });
wss.on('connection', (socket) => {
  outstanding.set(socket, 0);
  socket.on('message', (data) => results(socket, data.toString()));
  socket.on('close', () => outstanding.delete(socket));
});
server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
process.on('SIGTERM', () => process.exit(0));
