import { type Browser, type BrowserServer, chromium } from '@playwright/test';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.ts';

/** A Chromium of its own, in its own processes, that a test can kill as a crash or an OOM killer would. */
export interface KillableBrowser {
  browser: Browser;
  /** SIGKILL to the browser process: its tabs, workers and sockets die with no goodbye. */
  kill(): void;
  close(): Promise<void>;
}

export async function launchKillableBrowser(): Promise<KillableBrowser> {
  const server: BrowserServer = await chromium.launchServer({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  const browser = await chromium.connect(server.wsEndpoint());
  return {
    browser,
    kill: () => {
      // The whole process group: the renderers, the GPU and network processes go with the browser.
      const pid = server.process().pid;
      if (pid === undefined) throw new Error('the browser has no process to kill');
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        process.kill(pid, 'SIGKILL');
      }
    },
    close: async () => {
      await browser.close().catch(() => undefined);
      await server.close().catch(() => undefined);
    },
  };
}
