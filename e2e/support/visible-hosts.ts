import { type Page, expect } from '@playwright/test';
import type { VisibleBrowser } from './visible-browser.ts';

/** The parts of the host page's snapshot these tests read (see HostSnapshot in the app). */
export interface MigrationSnapshot {
  connection: 'connecting' | 'connected' | 'offline';
  hostId: string | null;
  paused: boolean;
  pauseReason: string | null;
  running: { tid: string; attempt: number; progress: number }[];
  workersAlive: number;
  migrations: { out: number; in: number; refilled: number };
  lastReclaim: { reason: string; clearedMs: number | null } | null;
  /** Outcomes kept in IndexedDB until the coordinator acknowledges them. */
  pendingResults: number;
}

/** A volunteer tab that can really be hidden and shown, so its reclaim policy acts as it would for a person. */
export interface VisibleHost {
  page: Page;
  hostId: string;
  snapshot(): Promise<MigrationSnapshot>;
  hide(): Promise<void>;
  show(): Promise<void>;
}

/** Opens `count` hosts, each in a window of its own, hidden (so every policy lets them compute). */
export async function openVisibleHosts(browser: VisibleBrowser, baseUrl: string, count: number, query: string): Promise<VisibleHost[]> {
  const hosts: VisibleHost[] = [];
  for (let i = 0; i < count; i++) {
    const page = await browser.newPage();
    await page.goto(`${baseUrl}/?${query}`);
    const snapshot = () =>
      page.evaluate(() => (globalThis as unknown as { __webpvmHost: { snapshot(): MigrationSnapshot } }).__webpvmHost.snapshot());
    await expect.poll(() => page.evaluate(() => (globalThis as unknown as { __webpvmHost?: unknown }).__webpvmHost !== undefined)).toBe(true);
    await expect.poll(async () => (await snapshot()).connection, { timeout: 15_000 }).toBe('connected');
    await browser.hide(page);
    await expect.poll(async () => (await snapshot()).paused).toBe(false);
    hosts.push({ page, hostId: (await snapshot()).hostId!, snapshot, hide: () => browser.hide(page), show: () => browser.show(page) });
  }
  return hosts;
}
