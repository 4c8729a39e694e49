import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import CDP from 'chrome-remote-interface';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../../e2e/support/chromium.ts';

/**
 * Chromium driven over a DevTools connection that enables no domain. Playwright enables Network
 * on every page, and with it Chromium hands the driver each WebSocket frame, base64-encoded: on
 * these machines a raw WebSocket echo of 64 KiB messages ran at ~35 MB/s under Playwright and at
 * 130–190 MB/s without it (bench/README.md). Benchmarks of WebSocket paths open their tabs here.
 */
export interface Tab {
  /** Runs `fn(arg)` in the page and returns its JSON result; `fn` must not close over anything. */
  evaluate<R, A = undefined>(fn: (arg: A) => R | Promise<R>, arg?: A): Promise<R>;
  /** Minimises the tab's window: the page becomes hidden, its timers throttled, as a volunteer leaves it. */
  hide(): Promise<void>;
  /** Restores the tab's window: the page is visible again. */
  show(): Promise<void>;
  /** Closes the tab with its browser context: its host goes away as when a volunteer closes it. */
  close(): Promise<void>;
}

export interface Browser {
  /** Chromium's browser process, which leads a process group of its own with all its helpers. */
  readonly pid: number;
  /** A tab in a browser context of its own (its own storage, so its own webpvm host). */
  open(url: string): Promise<Tab>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-bench-chromium-'));
  const child = spawn(CHROMIUM_PATH, ['--headless=new', ...CHROMIUM_ARGS, '--remote-debugging-port=0', `--user-data-dir=${profile}`, 'about:blank'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    // A process group of its own: closing kills Chromium's helper processes with it.
    detached: true,
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const clients: CDP.Client[] = [];
  const close = async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    await exited;
    // Helper processes may still be writing to the profile for a moment.
    fs.rmSync(profile, { recursive: true, force: true, maxRetries: 10 });
  };
  try {
    const endpoint = await debuggerUrl(child);
    const browser = await CDP({ target: endpoint });
    clients.push(browser);
    return {
      pid: child.pid!,
      open: async (url) => {
        const { browserContextId } = await browser.Target.createBrowserContext({});
        const { targetId } = await browser.Target.createTarget({ url: 'about:blank', browserContextId });
        const page = await CDP({ target: `ws://${new URL(endpoint).host}/devtools/page/${targetId}` });
        clients.push(page);
        // The baselines connect the host page to the bench's own servers and data channels, which the
        // page's Content-Security-Policy forbids (connect-src 'self'); webpvm's paths need no exception.
        await page.Page.setBypassCSP({ enabled: true });
        await page.Page.navigate({ url });
        const { windowId } = await browser.Browser.getWindowForTarget({ targetId });
        const visibility = async (windowState: 'minimized' | 'normal', wanted: 'hidden' | 'visible') => {
          await browser.Browser.setWindowBounds({ windowId, bounds: { windowState } });
          const deadline = Date.now() + 5_000;
          while ((await evaluate(page, () => document.visibilityState, undefined)) !== wanted) {
            if (Date.now() > deadline) throw new Error(`the tab did not become ${wanted}`);
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        };
        return {
          evaluate: (fn, arg) => evaluate(page, fn, arg),
          hide: () => visibility('minimized', 'hidden'),
          show: () => visibility('normal', 'visible'),
          close: async () => {
            clients.splice(clients.indexOf(page), 1);
            await page.close();
            await browser.Target.disposeBrowserContext({ browserContextId });
          },
        };
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A volunteer tab, waited on until its host is connected. */
export async function openHostTab(browser: Browser, baseUrl: string, query: string): Promise<Tab> {
  const tab = await browser.open(`${baseUrl}/?${query}`);
  const deadline = Date.now() + 30_000;
  // Until the page has loaded there is no context to evaluate in: that counts as not connected yet.
  const connected = () => tab.evaluate(() => (globalThis as any).__webpvmHost?.snapshot().connection === 'connected').catch(() => false);
  while (!(await connected())) {
    if (Date.now() > deadline) throw new Error(`the host tab at ${baseUrl} did not connect within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return tab;
}

async function evaluate<R, A>(page: CDP.Client, fn: (arg: A) => R | Promise<R>, arg: A | undefined): Promise<R> {
  // tsx compiles with keepNames: the function's source calls esbuild's __name helper
  const expression = `(globalThis.__name ??= (f) => f, (${fn.toString()})(${arg === undefined ? '' : JSON.stringify(arg)}))`;
  const { result, exceptionDetails } = await page.Runtime.evaluate({ expression, awaitPromise: true, returnByValue: true });
  if (exceptionDetails) throw new Error(`in the page: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
  return result.value as R;
}

/** Chromium prints where its DevTools endpoint listens once it is up; the rest of its stderr is read and dropped. */
function debuggerUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let printed = '';
    let found = false;
    child.stderr!.on('data', (chunk: Buffer) => {
      if (found) return;
      printed += chunk.toString();
      const url = printed.match(/DevTools listening on (ws:\/\/\S+)/)?.[1];
      found = url !== undefined;
      if (url) resolve(url);
    });
    child.once('exit', (code) => reject(new Error(`Chromium exited with ${code} before its DevTools endpoint was up:\n${printed}`)));
  });
}
