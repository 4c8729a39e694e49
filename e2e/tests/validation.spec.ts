import type { Browser } from '@playwright/test';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';

/**
 * A volunteer that lies: its browser profile (two tabs of it) runs a modified page that adds one
 * to every number it reports as a result, on the wire, after the task computed it honestly.
 */
async function openLiar(browser: Browser, baseUrl: string, tabs: number): Promise<void> {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      if (typeof data === 'string' && data.startsWith('{"type":"results"')) {
        const frame = JSON.parse(data) as { items: { ok: boolean; value?: unknown }[] };
        for (const item of frame.items) if (item.ok && typeof item.value === 'number') item.value += 1;
        return send.call(this, JSON.stringify(frame));
      }
      return send.call(this, data);
    };
  });
  for (let i = 0; i < tabs; i++) {
    const page = await context.newPage();
    await page.goto(`${baseUrl}/?slots=2&policy=always`);
    await expect
      .poll(() => page.evaluate(() => (globalThis as unknown as { __webpvmHost?: { snapshot(): { connection: string } } }).__webpvmHost?.snapshot().connection))
      .toBe('connected');
  }
}

interface HostRow {
  volunteerId: string;
  userAgent: string;
  validated: number;
  invalid: number;
  connected: boolean;
}

test('with replicas 2 and quorum 2, a lying volunteer with two tabs beside two honest ones gets no wrong result accepted, and is counted invalid', async ({ browser, api }) => {
  test.setTimeout(120_000);
  await openLiar(browser, api.baseUrl, 2);
  const liarVolunteer = ((await (await api.request('GET', '/api/hosts')).json()) as { hosts: HostRow[] }).hosts[0]!.volunteerId;
  await openHosts(browser, api.baseUrl, 2, 2);
  const total = 60;
  const id = await api.submit({ name: 'validated', program: 'export default (ctx, x) => x * x;', inputs: Array.from({ length: total }, (_, i) => i), replicas: 2, quorum: 2 });
  const job = await api.waitForState(id, 'done', 90_000);
  expect(job.tasks).toMatchObject({ total, done: total, failed: 0 });
  expect(await api.results(id)).toEqual(Array.from({ length: total }, (_, i) => i * i));

  const hosts = ((await (await api.request('GET', '/api/hosts')).json()) as { hosts: HostRow[] }).hosts.filter((h) => h.connected);
  const liar = hosts.filter((h) => h.volunteerId === liarVolunteer);
  const honest = hosts.filter((h) => h.volunteerId !== liarVolunteer);
  expect(liar).toHaveLength(2);
  expect(new Set(honest.map((h) => h.volunteerId)).size).toBe(2);
  expect(liar[0]!.invalid).toBeGreaterThan(0);
  expect(liar[0]!.validated).toBe(0);
  for (const h of honest) expect(h.invalid).toBe(0);
  expect(honest.reduce((sum, h) => sum + h.validated, 0)).toBeGreaterThanOrEqual(total);
  // at least two results per task, and a third where the liar was one of the first two
  expect(job.attempts).toBeGreaterThanOrEqual(2 * total + liar[0]!.invalid);

  const metrics = await (await api.request('GET', '/metrics')).text();
  expect(metrics).toContain(`webpvm_volunteer_results{volunteer="${liarVolunteer}",verdict="invalid"} ${liar[0]!.invalid}`);
});

test('with adaptive replication, trusted volunteers need fewer than 1.3 runs a task, and a trusted one that starts lying is caught', async ({ browser, api }) => {
  test.setTimeout(180_000);
  // the turncoat: honest until its page is told to lie
  const context = await browser.newContext();
  await context.addInitScript(() => {
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      if ((globalThis as { lie?: boolean }).lie && typeof data === 'string' && data.startsWith('{"type":"results"')) {
        const frame = JSON.parse(data) as { items: { ok: boolean; value?: unknown }[] };
        for (const item of frame.items) if (item.ok && typeof item.value === 'number') item.value += 1;
        return send.call(this, JSON.stringify(frame));
      }
      return send.call(this, data);
    };
  });
  const turncoat = await context.newPage();
  await turncoat.goto(`${api.baseUrl}/?slots=2&policy=always`);
  await expect
    .poll(() => turncoat.evaluate(() => (globalThis as unknown as { __webpvmHost?: { snapshot(): { connection: string } } }).__webpvmHost?.snapshot().connection))
    .toBe('connected');
  const turncoatVolunteer = ((await (await api.request('GET', '/api/hosts')).json()) as { hosts: HostRow[] }).hosts[0]!.volunteerId;
  await openHosts(browser, api.baseUrl, 3, 2);
  const squares = (name: string, total: number) => ({
    name,
    program: 'export default (ctx, x) => x * x;',
    inputs: Array.from({ length: total }, (_, i) => i),
    replicas: 2,
    quorum: 2,
    adaptive: true,
  });
  const run = async (name: string, total: number) => {
    const id = await api.submit(squares(name, total));
    const job = await api.waitForState(id, 'done', 90_000);
    expect(await api.results(id)).toEqual(Array.from({ length: total }, (_, i) => i * i));
    return job;
  };
  const volunteers = async () => ((await (await api.request('GET', '/api/hosts')).json()) as { hosts: (HostRow & { trusted: boolean })[] }).hosts.filter((h) => h.connected);

  // A volunteer earns trust with 10 agreeing results in a row. How 120 tasks spread over the tabs
  // depends on the machine's load (a slow tab gets few, and once others are trusted, fewer still):
  // another 120 then, a few times at most.
  for (let round = 1; round <= 4; round++) {
    await run(`earn trust ${round}`, 120);
    if ((await volunteers()).every((h) => h.trusted)) break;
  }
  expect((await volunteers()).every((h) => h.trusted)).toBe(true);

  const trusted = await run('trusted', 600);
  const runsPerTask = trusted.attempts / 600;
  console.log(`adaptive, every volunteer trusted: ${runsPerTask.toFixed(3)} runs a task`);
  expect(runsPerTask).toBeLessThan(1.3);

  // It is caught only by results it gives while lying. A tab that lost its connection for a moment
  // under load can see a 300-task job end without it: then another job, a few times at most.
  const ranByTurncoat = () => turncoat.evaluate(() => (globalThis as unknown as { __webpvmHost: { snapshot(): { done: number } } }).__webpvmHost.snapshot().done);
  await turncoat.evaluate(() => ((globalThis as { lie?: boolean }).lie = true));
  const honestRuns = await ranByTurncoat();
  for (let round = 1; round <= 3 && (await ranByTurncoat()) === honestRuns; round++) await run(`caught ${round}`, 300);
  console.log(`tasks the turncoat ran while lying: ${(await ranByTurncoat()) - honestRuns}`);
  expect(await ranByTurncoat()).toBeGreaterThan(honestRuns);
  const after = await volunteers();
  const caught = after.find((h) => h.volunteerId === turncoatVolunteer)!;
  expect(caught.trusted).toBe(false);
  expect(caught.invalid).toBeGreaterThan(0);
  for (const h of after.filter((h) => h.volunteerId !== turncoatVolunteer)) expect(h).toMatchObject({ trusted: true, invalid: 0 });
});
