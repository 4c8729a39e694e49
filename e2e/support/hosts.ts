import { type Browser, type BrowserContext, type BrowserContextOptions, type Page, expect } from '@playwright/test';

/** What the host page reports about itself (`globalThis.__webpvmHost.snapshot()`). */
export interface HostSnapshot {
  connection: 'connecting' | 'connected' | 'offline';
  hostId: string | null;
  peerId: string | null;
  slots: number;
  policy: string;
  running: { tid: string; attempt: number; progress: number }[];
  queued: number;
  done: number;
  failed: number;
  pendingResults: number;
  workersStarted: number;
}

export interface HostTab {
  page: Page;
  context: BrowserContext;
  snapshot(): Promise<HostSnapshot>;
  close(): Promise<void>;
}

/** One volunteer tab, in a browser context of its own, as a separate volunteer's browser would be. */
export async function openHost(browser: Browser, baseUrl: string, slots = 2, query = '', contextOptions: BrowserContextOptions = {}): Promise<HostTab> {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  await page.goto(`${baseUrl}/?slots=${slots}&policy=always${query}`);
  const tab: HostTab = {
    page,
    context,
    snapshot: () =>
      page.evaluate(() => (globalThis as unknown as { __webpvmHost: { snapshot(): HostSnapshot } }).__webpvmHost.snapshot()),
    close: () => context.close(),
  };
  // the page publishes its snapshot once it has claimed its IndexedDB lane: until then, not connected
  const connection = () =>
    page.evaluate(() => (globalThis as unknown as { __webpvmHost?: { snapshot(): HostSnapshot } }).__webpvmHost?.snapshot().connection);
  await expect.poll(connection, { timeout: 15_000 }).toBe('connected');
  return tab;
}

export async function openHosts(browser: Browser, baseUrl: string, count: number, slots = 2, query = '', contextOptions: BrowserContextOptions = {}): Promise<HostTab[]> {
  const tabs: HostTab[] = [];
  for (let i = 0; i < count; i++) tabs.push(await openHost(browser, baseUrl, slots, query, contextOptions));
  return tabs;
}
