import { expect, test } from '../support/fixtures.ts';

test('two tabs of one browser profile are two hosts, and a reloaded tab keeps its identity', async ({ browser, api }) => {
  const context = await browser.newContext();
  const snapshot = (page: import('@playwright/test').Page) =>
    page.evaluate(() => {
      const host = (globalThis as unknown as { __webpvmHost?: { snapshot(): { connection: string; hostId: string | null } } }).__webpvmHost;
      return host ? host.snapshot() : { connection: 'starting', hostId: null };
    });
  const [first, second] = [await context.newPage(), await context.newPage()];
  for (const page of [first, second]) {
    await page.goto(`${api.baseUrl}/?slots=1&policy=always`);
    await expect.poll(async () => (await snapshot(page)).connection).toBe('connected');
  }
  const firstId = (await snapshot(first)).hostId;
  const secondId = (await snapshot(second)).hostId;
  expect(firstId).toMatch(/^h[0-9a-f]+$/);
  expect(secondId).not.toBe(firstId);

  await first.reload();
  await expect.poll(async () => (await snapshot(first)).connection).toBe('connected');
  expect((await snapshot(first)).hostId).toBe(firstId);

  const hosts = (await (await api.request('GET', '/api/hosts')).json()) as { hosts: { hostId: string; connected: boolean }[] };
  expect(hosts.hosts.filter((h) => h.connected).map((h) => h.hostId).sort()).toEqual([firstId, secondId].sort());
  await context.close();
});
