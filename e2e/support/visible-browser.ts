import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Page, chromium } from '@playwright/test';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.ts';

/**
 * A Chromium whose tabs can really be hidden and shown (Page Visibility API), which a browser
 * from `chromium.launch()` cannot do: Playwright's focus emulation keeps its pages visible.
 * All tabs share one profile (storage per origin is shared), see `launchVisibleBrowser`.
 */
export interface VisibleBrowser {
  /** A new tab in a window of its own, so each tab can be hidden/shown independently of the others. */
  newPage(): Promise<Page>;
  /** Resolves once `document.visibilityState` is `'hidden'` in that page. */
  hide(page: Page): Promise<void>;
  /** Resolves once `document.visibilityState` is `'visible'` in that page. */
  show(page: Page): Promise<void>;
  /** Closes the browser, kills its processes and removes its profile directory. */
  close(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;
/**
 * A shown or hidden tab answers once Chromium schedules its renderer, which on a 2-core machine
 * whose cores task workers keep busy took up to 10 s (measured with two busy processes beside
 * the suite); the bound is only there so that a tab that never changes fails the test.
 */
const VISIBILITY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

/**
 * Measured with Chromium 156 headless and Playwright 1.65:
 * - minimising a tab's own window makes it `hidden` (and fires `visibilitychange`) before
 *   `Browser.setWindowBounds` returns; `normal` makes it `visible` again; 7–35 ms per toggle.
 *   Its timers drop to ~1 Hz and `requestAnimationFrame` stops, as in a real background tab.
 * - a page stays hidden across navigations, since the state belongs to its window.
 * - `page.mouse` / `page.keyboard` and locator actions work on a visible tab. On a hidden tab
 *   locator actions time out, as their actionability checks wait for animation frames.
 * - `page.close({ runBeforeUnload: true })` fires `beforeunload` and `pagehide`, hidden or not;
 *   the page is gone ~300 ms later (wait for its `close` event). A plain `page.close()` fires
 *   neither.
 * - pages of `browser.newContext()` open in windows of their own but stay visible when
 *   minimised: Playwright turns focus emulation on for every context it creates, and another
 *   CDP session cannot turn it off. So all tabs live in the default context.
 */
export async function launchVisibleBrowser(extraArgs: readonly string[] = []): Promise<VisibleBrowser> {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-visible-'));
  const child = spawn(
    CHROMIUM_PATH,
    [...CHROMIUM_ARGS, ...extraArgs, '--headless', '--remote-debugging-port=0', `--user-data-dir=${userDataDir}`, 'about:blank'],
    // a process group of its own: helpers outlive the browser process by a moment and would
    // still be writing into the profile directory when it is removed
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  const stop = async () => {
    await stopProcessGroup(child);
    fs.rmSync(userDataDir, { recursive: true, force: true, maxRetries: 3 });
  };

  try {
    // without noDefaults Playwright would turn focus emulation on, and no page could be hidden
    const browser = await chromium.connectOverCDP(await devtoolsUrl(child), { noDefaults: true });
    const context = browser.contexts()[0]!;
    const cdp = await browser.newBrowserCDPSession();
    const windows = new Map<Page, number>();
    let closing: Promise<void> | undefined;

    const targetIdOf = async (page: Page): Promise<string> => {
      const session = await context.newCDPSession(page);
      try {
        return (await session.send('Target.getTargetInfo')).targetInfo.targetId;
      } finally {
        await session.detach();
      }
    };

    const setVisibility = async (page: Page, state: DocumentVisibilityState): Promise<void> => {
      const windowId = windows.get(page);
      if (windowId === undefined) throw new Error('not an open page of this VisibleBrowser');
      await cdp.send('Browser.setWindowBounds', {
        windowId,
        bounds: { windowState: state === 'hidden' ? 'minimized' : 'normal' },
      });
      await withTimeout(
        // the page's event, not a poll: a hidden page's timers and animation frames barely run
        page.evaluate(
          (wanted) =>
            new Promise<void>((resolve) => {
              const check = () => {
                if (document.visibilityState !== wanted) return;
                document.removeEventListener('visibilitychange', check);
                resolve();
              };
              document.addEventListener('visibilitychange', check);
              check();
            }),
          state,
        ),
        VISIBILITY_TIMEOUT_MS,
        `page did not become ${state}`,
      );
    };

    return {
      async newPage() {
        // the page event may come before createTarget answers, so listen before asking
        const created = cdp.send('Target.createTarget', { url: 'about:blank', newWindow: true });
        const [page, { targetId }] = await Promise.all([
          context.waitForEvent('page', async (p) => (await targetIdOf(p)) === (await created).targetId),
          created,
        ]);
        windows.set(page, (await cdp.send('Browser.getWindowForTarget', { targetId })).windowId);
        page.once('close', () => windows.delete(page));
        return page;
      },
      hide: (page) => setVisibility(page, 'hidden'),
      show: (page) => setVisibility(page, 'visible'),
      close() {
        // a test's own finally and a fixture may both close it
        closing ??= browser.close().finally(stop);
        return closing;
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Chromium prints the browser's DevTools endpoint on stderr once it listens. */
function devtoolsUrl(child: ChildProcess): Promise<string> {
  const stderr = child.stderr!;
  let output = '';
  return new Promise((resolve, reject) => {
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      stderr.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      // keep draining: a full pipe would block Chromium's next write to stderr
      stderr.resume();
      settle();
    };
    const onData = (chunk: Buffer) => {
      output += chunk;
      const url = /DevTools listening on (ws:\/\/\S+)/.exec(output)?.[1];
      if (url) finish(() => resolve(url));
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      finish(() => reject(new Error(`chromium exited (${code ?? signal}) before listening:\n${output}`)));
    const onError = (error: Error) => finish(() => reject(error));
    const timer = setTimeout(
      () => finish(() => reject(new Error(`chromium did not listen within ${START_TIMEOUT_MS} ms:\n${output}`))),
      START_TIMEOUT_MS,
    );
    stderr.on('data', onData);
    child.on('exit', onExit);
    child.on('error', onError);
  });
}

/** The browser shuts down on SIGTERM; whatever of its group is left after that is killed. */
async function stopProcessGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined) return; // it never started
  child.kill('SIGTERM');
  await exited(child, STOP_TIMEOUT_MS);
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch (error) {
    // the whole group is already gone
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
  await exited(child, STOP_TIMEOUT_MS);
}

function exited(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  // made now, so that its stack leads to the test's call rather than to a timer
  const error = new Error(`${message} within ${ms} ms`);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
