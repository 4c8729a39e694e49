import { existsSync } from 'node:fs';
import { WebpvmError } from '@webpvm/vm-protocol';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ApiClient, type ClientOptions } from './api-client.ts';
import { say } from './output.ts';
import { untilStopSignal } from './signals.ts';

/** The host page's `policy` query option (docs/protocol.md, "The host page"). */
export type Policy = 'idle' | 'hidden' | 'always';

export interface VolunteerOptions extends ClientOptions {
  tabs: number;
  slots?: number;
  policy: Policy;
}

const CHROMIUM = '/usr/bin/chromium';
/** Keeps Chromium off the network except for the coordinator (see ENVIRONMENT.md). */
const QUIET_FLAGS = [
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const POLL_MS = 500;

/**
 * Opens `tabs` headless Chromium tabs on the host page, each in its own browser context:
 * tabs of one profile would share one set of slots and count as one host.
 */
export async function volunteer(options: VolunteerOptions): Promise<void> {
  if (!existsSync(CHROMIUM)) throw new WebpvmError('E_INTERNAL', 'chromium not found: apt-get install -y chromium');
  const client = new ApiClient(options);
  await client.health();
  const pageUrl = hostPageUrl(client.url, options);

  const stopped = untilStopSignal();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: process.getuid?.() === 0 ? [...QUIET_FLAGS, '--no-sandbox'] : QUIET_FLAGS,
    // Shutdown is ours: close the browser after the signal, not from Playwright's own handlers.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  const crashed = new Promise<never>((_, reject) =>
    browser.once('disconnected', () => reject(new WebpvmError('E_INTERNAL', 'chromium exited'))),
  );
  let watch: NodeJS.Timeout | undefined;
  try {
    say(`opening ${options.tabs} tab${options.tabs === 1 ? '' : 's'} at ${pageUrl}`);
    const pages = await Promise.race([
      Promise.all(Array.from({ length: options.tabs }, (_, index) => openTab(browser, pageUrl, index + 1))),
      crashed,
    ]);
    watch = watchConnections(pages);
    const signal = await Promise.race([stopped, crashed]);
    say(`${signal}: closing the tabs`);
  } finally {
    clearInterval(watch);
    if (browser.isConnected()) await browser.close();
  }
}

function hostPageUrl(base: string, options: VolunteerOptions): string {
  const url = new URL(`${base}/`);
  if (options.slots !== undefined) url.searchParams.set('slots', String(options.slots));
  url.searchParams.set('policy', options.policy);
  return url.href;
}

async function openTab(browser: Browser, url: string, number: number): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (error) => say(`tab ${number}: page error: ${error.message}`));
  page.on('crash', () => say(`tab ${number}: crashed`));
  try {
    await page.goto(url);
  } catch (error) {
    throw new WebpvmError('E_INTERNAL', `tab ${number} cannot open ${url}: ${(error as Error).message.split('\n')[0]}`);
  }
  return page;
}

/** Prints a line each time a tab's connection to the coordinator changes, starting with "connected". */
function watchConnections(pages: Page[]): NodeJS.Timeout {
  const last = pages.map((): string | undefined => undefined);
  let polling = false;
  let allConnected = false;
  return setInterval(async () => {
    if (polling) return;
    polling = true;
    try {
      await Promise.all(
        pages.map(async (page, index) => {
          const connection = await connectionOf(page);
          if (connection === undefined || connection === last[index]) return;
          if (last[index] !== undefined || connection === 'connected') say(`tab ${index + 1}: ${connection}`);
          last[index] = connection;
        }),
      );
      if (!allConnected && last.every((connection) => connection === 'connected')) {
        allConnected = true;
        say(`${pages.length} host${pages.length === 1 ? '' : 's'} connected; Ctrl-C to stop`);
      }
    } finally {
      polling = false;
    }
  }, POLL_MS);
}

async function connectionOf(page: Page): Promise<string | undefined> {
  try {
    const connection = await page.evaluate(
      () =>
        (globalThis as { __webpvmHost?: { snapshot(): { connection: unknown } } }).__webpvmHost?.snapshot()
          .connection,
    );
    if (connection === undefined) return undefined;
    return typeof connection === 'string' ? connection : JSON.stringify(connection);
  } catch {
    // The page is navigating or closing; the next poll asks again.
    return undefined;
  }
}
