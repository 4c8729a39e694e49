import { type Browser, type Page, chromium } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../../e2e/support/chromium.ts';

export const launchBrowser = (): Promise<Browser> => chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });

/** A volunteer tab in a browser context of its own, waited on until it is connected. */
export async function openHostTab(browser: Browser, baseUrl: string, query: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  // tsx compiles with keepNames: functions handed to page.evaluate call esbuild's __name helper
  await page.addInitScript('globalThis.__name = (fn) => fn;');
  await page.goto(`${baseUrl}/?${query}`);
  await page.waitForFunction(() => (globalThis as any).__webpvmHost?.snapshot().connection === 'connected');
  return page;
}
