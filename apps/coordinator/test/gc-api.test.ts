import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, apiHarness } from './support/api-harness.ts';
import { connect, settle } from './support/scheduler-harness.ts';

type Harness = Awaited<ReturnType<typeof apiHarness>>;
const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

describe('POST /api/admin/gc', () => {
  it('deletes finished jobs older than asked, keeps running ones, and is for admins only', async () => {
    const h = await apiHarness();
    harnesses.push(h);
    const finished = await h.submit(ADMIN_TOKEN, [1]);
    const running = await h.submit(ADMIN_TOKEN, [2, 3]);
    const host = connect(h.scheduler, 'ha', 1);
    await settle();
    const mine = host.assigned().find((t) => t.tid.startsWith(finished))!;
    h.scheduler.reports.outcomes('ha', [{ tid: mine.tid, attempt: mine.attempt, ok: true, value: 1 }]);
    await settle();
    await h.scheduler.writes.durable();
    const gc = (token: string, olderThanDays: number) => h.app.inject({ method: 'POST', url: '/api/admin/gc', headers: h.bearer(token), payload: { olderThanDays } });

    expect((await gc(await h.token('researcher'), 0)).json()).toMatchObject({ error: { code: 'E_FORBIDDEN' } });
    expect((await gc(ADMIN_TOKEN, 1)).json()).toEqual({ jobs: 0, rows: 0 });
    const collected = await gc(ADMIN_TOKEN, 0);
    expect(collected.statusCode).toBe(200);
    expect(collected.json()).toMatchObject({ jobs: 1 });
    expect((await h.app.inject({ method: 'GET', url: `/api/jobs/${finished}`, headers: h.bearer(ADMIN_TOKEN) })).statusCode).toBe(404);
    expect((await h.app.inject({ method: 'GET', url: `/api/jobs/${running}`, headers: h.bearer(ADMIN_TOKEN) })).statusCode).toBe(200);
    expect((await h.app.inject({ method: 'POST', url: '/api/admin/gc', headers: h.bearer(ADMIN_TOKEN), payload: { olderThanDays: -1 } })).statusCode).toBe(400);
  });
});
