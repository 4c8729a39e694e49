import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Tab } from './browser.ts';

/**
 * The bench's side of the bare baseline (bench/src/bare-server.ts, its own process): start the
 * server, open bare tabs in the bench's browser, connect them, run and count.
 */
const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface BareRunOptions {
  /** 0: x → x²; otherwise spin(k, x). */
  k: number;
  /** Items per batch (one WebSocket frame, one worker message). */
  batch: number;
  /** Batches each tab has out at once. */
  inflight: number;
  /** Items in all; none: until stopped. */
  total?: number;
  /** Expected spin results by x, checked by the server. */
  check?: Record<number, number>;
}

export interface BareCount {
  connected: number;
  done: number;
  errors: number;
  firstError: string | null;
  /** ms since the run started */
  t: number;
  /** ms from the run's start to its latest results */
  lastAt: number;
}

export class BareServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(): Promise<BareServer> {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(benchDir, 'src/bare-server.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d) => resolve(Number(String(d).trim())));
      child.once('exit', (code) => reject(new Error(`the bare server exited with ${code}`)));
    });
    return new BareServer(child, `http://127.0.0.1:${port}`);
  }

  get pid(): number {
    return this.child.pid!;
  }

  private async call<T>(method: string, route: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.url}${route}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`bare server ${method} ${route}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  /** Starts feeding every connected tab; answers how many are. */
  async start(options: BareRunOptions): Promise<number> {
    return (await this.call<{ connected: number }>('POST', '/start', options)).connected;
  }

  count(): Promise<BareCount> {
    return this.call('GET', '/count');
  }

  /** Feeds no more; resolves once every batch out has come back. */
  stop(): Promise<{ done: number; errors: number; firstError: string | null }> {
    return this.call('POST', '/stop');
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

type BareGlobals = { __bare?: { ws: WebSocket; worker: Worker } };

/** A blank tab on the bare server's origin (not cross-origin isolated: it needs no shared memory). */
export function openBareTab(browser: Browser, server: BareServer): Promise<Tab> {
  return browser.open(`${server.url}/`);
}

/**
 * The page's part: one WebSocket to the server and one Worker; each frame goes to the worker as
 * it came and each answer of the worker back on the socket, unparsed. Waits for the page to load.
 */
export async function connectBareTab(tab: Tab): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await tab
      .evaluate(async () => {
        if (document.readyState !== 'complete' || location.protocol !== 'http:') return false;
        const ws = new WebSocket(`ws://${location.host}/ws`);
        const worker = new Worker('/worker.js');
        ws.onmessage = (e) => worker.postMessage(e.data);
        worker.onmessage = (e) => ws.send(e.data);
        await new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onerror = () => reject(new Error('the bare WebSocket did not open'));
        });
        (globalThis as unknown as BareGlobals).__bare = { ws, worker };
        return true;
      })
      .catch(() => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error('the bare tab did not load within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Closes the tab's WebSocket and worker: the server feeds it no more. */
export async function disconnectBareTab(tab: Tab): Promise<void> {
  await tab.evaluate(async () => {
    const bare = (globalThis as unknown as BareGlobals).__bare;
    if (!bare) return;
    bare.worker.terminate();
    const closed = new Promise((resolve) => (bare.ws.onclose = resolve));
    bare.ws.close();
    await closed;
    delete (globalThis as unknown as BareGlobals).__bare;
  });
}

/**
 * How many rounds of spin take `targetMs` of CPU, measured in a fresh worker of the bare page:
 * doubled from 1 until a run takes ≥ 50 ms, then the best rate of ten runs of ~100 ms (on a
 * shared machine, slower runs measure the neighbours).
 */
export function calibrateSpin(tab: Tab, targetMs: number[]): Promise<{ roundsPerMs: number; rounds: number[] }> {
  return tab.evaluate(
    async (targetMs) => {
      const worker = new Worker('/worker.js');
      const time = (n: number) =>
        new Promise<number>((resolve) => {
          worker.onmessage = (e) => resolve(e.data.ms);
          worker.postMessage({ n });
        });
      let n = 1;
      while ((await time(n)) < 50) n *= 2;
      let best = 0;
      const m = Math.round((n * 100) / (await time(n)));
      for (let i = 0; i < 10; i++) best = Math.max(best, m / (await time(m)));
      worker.terminate();
      return { roundsPerMs: best, rounds: targetMs.map((ms) => Math.round(best * ms)) };
    },
    targetMs,
  );
}
