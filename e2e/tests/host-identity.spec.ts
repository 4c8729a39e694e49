import { expect, test } from '../support/fixtures.ts';

test('two tabs of one browser profile are two hosts of one volunteer, another profile is another volunteer, and a reloaded tab keeps its identity', async ({
  browser,
  api,
}) => {
  const context = await browser.newContext();
  const snapshot = (page: import('@playwright/test').Page) =>
    page.evaluate(() => {
      const host = (globalThis as unknown as { __webpvmHost?: { snapshot(): { connection: string; hostId: string | null } } }).__webpvmHost;
      return host ? host.snapshot() : { connection: 'starting', hostId: null };
    });
  const [first, second] = [await context.newPage(), await context.newPage()];
  // opened together, as a fresh profile's tabs may be: both look for the volunteer key at once
  await Promise.all([first, second].map((page) => page.goto(`${api.baseUrl}/?slots=1&policy=always`)));
  for (const page of [first, second]) await expect.poll(async () => (await snapshot(page)).connection).toBe('connected');
  const firstId = (await snapshot(first)).hostId;
  const secondId = (await snapshot(second)).hostId;
  expect(firstId).toMatch(/^h[0-9a-f]+$/);
  expect(secondId).not.toBe(firstId);

  await first.reload();
  await expect.poll(async () => (await snapshot(first)).connection).toBe('connected');
  expect((await snapshot(first)).hostId).toBe(firstId);

  const otherProfile = await browser.newContext();
  const third = await otherProfile.newPage();
  await third.goto(`${api.baseUrl}/?slots=1&policy=always`);
  await expect.poll(async () => (await snapshot(third)).connection).toBe('connected');
  const thirdId = (await snapshot(third)).hostId;

  const hosts = (await (await api.request('GET', '/api/hosts')).json()) as { hosts: { hostId: string; connected: boolean; volunteerId: string }[] };
  const connected = hosts.hosts.filter((h) => h.connected);
  expect(connected.map((h) => h.hostId).sort()).toEqual([firstId, secondId, thirdId].sort());
  const volunteerOf = (hostId: string | null) => connected.find((h) => h.hostId === hostId)?.volunteerId;
  expect(volunteerOf(firstId)).toMatch(/^v[0-9a-f]{16}$/);
  expect(volunteerOf(secondId)).toBe(volunteerOf(firstId));
  expect(volunteerOf(thirdId)).toMatch(/^v[0-9a-f]{16}$/);
  expect(volunteerOf(thirdId)).not.toBe(volunteerOf(firstId));
  await context.close();
  await otherProfile.close();
});
