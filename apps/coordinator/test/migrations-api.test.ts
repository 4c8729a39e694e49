import { MigrationList } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { connect, settle } from './support/scheduler-harness.ts';
import { ADMIN_TOKEN, apiHarness, migrationOf } from './support/api-harness.ts';
import { frameId, openSse } from './support/sse-client.ts';

type Harness = Awaited<ReturnType<typeof apiHarness>>;
const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function setup(): Promise<Harness> {
  const h = await apiHarness();
  harnesses.push(h);
  return h;
}

async function listening(h: Harness): Promise<string> {
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  const address = h.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return `http://127.0.0.1:${address.port}`;
}

describe('GET /api/jobs/:id/migrations', () => {
  it('lists the job’s migrations oldest first, to its owner and to admins only', async () => {
    const h = await setup();
    const alice = await h.token('alice');
    const bob = await h.token('bob');
    const mine = await h.submit(alice);
    const theirs = await h.submit(bob);
    h.events.record(migrationOf(mine, 0));
    h.events.record(migrationOf(theirs, 0));
    h.events.record({ ...migrationOf(mine, 0), reason: 'hidden', to: null, latencyMs: null, path: 'coordinator', frozen: false });

    const res = await h.app.inject({ url: `/api/jobs/${mine}/migrations`, headers: h.bearer(alice) });
    expect(res.statusCode).toBe(200);
    const body = MigrationList.parse(res.json());
    expect(body.migrations.map((m) => m.id)).toEqual([1, 3]);
    expect(body.migrations[1]).toEqual({ id: 3, ...migrationOf(mine, 0), reason: 'hidden', to: null, latencyMs: null, path: 'coordinator', frozen: false });

    const admin = await h.app.inject({ url: `/api/jobs/${theirs}/migrations`, headers: h.bearer(ADMIN_TOKEN) });
    expect(admin.json<MigrationList>().migrations.map((m) => m.id)).toEqual([2]);
    const hidden = await h.app.inject({ url: `/api/jobs/${theirs}/migrations`, headers: h.bearer(alice) });
    expect(hidden.statusCode).toBe(404);
    expect(hidden.json()).toEqual({ error: { code: 'E_NOT_FOUND', message: `no job ${theirs}` } });
    expect((await h.app.inject({ url: `/api/jobs/${mine}/migrations` })).statusCode).toBe(401);
    expect((await h.app.inject({ url: '/api/jobs/nosuchjob/migrations', headers: h.bearer(ADMIN_TOKEN) })).statusCode).toBe(404);
  });

  it('gives an empty timeline to a job that never moved', async () => {
    const h = await setup();
    const id = await h.submit(ADMIN_TOKEN);
    const res = await h.app.inject({ url: `/api/jobs/${id}/migrations`, headers: h.bearer(ADMIN_TOKEN) });
    expect(res.json()).toEqual({ migrations: [] });
  });
});

async function running(h: Harness, owner: string, inputs: number) {
  const id = await h.submit(owner, Array.from({ length: inputs }, (_, i) => i));
  const host = connect(h.scheduler, 'ha', 1);
  await settle();
  return { id, host };
}

describe('POST|DELETE /api/hosts/:id/drain', () => {
  it('lets an admin drain a host: its running tasks are ordered off it, it is given nothing until undrained', async () => {
    const h = await setup();
    const alice = await h.token('alice');
    const { id, host } = await running(h, alice, 4);
    expect((await h.app.inject({ method: 'POST', url: '/api/hosts/ha/drain', headers: h.bearer(alice) })).statusCode).toBe(403);
    expect((await h.app.inject({ method: 'POST', url: '/api/hosts/nohost/drain', headers: h.bearer(ADMIN_TOKEN) })).statusCode).toBe(404);

    const res = await h.app.inject({ method: 'POST', url: '/api/hosts/ha/drain', headers: h.bearer(ADMIN_TOKEN) });
    expect(res.statusCode).toBe(202);
    const held = host.sent.flatMap((m) => (m.type === 'assign' ? m.tasks : [])).length;
    expect(res.json()).toEqual({ hostId: 'ha', draining: true, ordered: held });
    expect(host.sent.filter((m) => m.type === 'migrate')).toHaveLength(held);
    const hosts = await h.app.inject({ url: '/api/hosts', headers: h.bearer(ADMIN_TOKEN) });
    expect(hosts.json<{ hosts: { hostId: string; draining: boolean }[] }>().hosts).toEqual([expect.objectContaining({ hostId: 'ha', draining: true })]);

    // a task that ends frees a slot, but a draining host is given none of the pending ones
    const first = host.sent.find((m) => m.type === 'assign');
    if (first?.type !== 'assign') throw new Error('nothing assigned');
    h.scheduler.reports.outcomes('ha', [{ tid: first.tasks[0]!.tid, attempt: 1, ok: true, value: 1 }]);
    await settle();
    const assignsBefore = host.sent.filter((m) => m.type === 'assign').length;
    expect(assignsBefore).toBe(1);

    const undrain = await h.app.inject({ method: 'DELETE', url: '/api/hosts/ha/drain', headers: h.bearer(ADMIN_TOKEN) });
    expect(undrain.json()).toEqual({ hostId: 'ha', draining: false, ordered: 0 });
    await settle();
    expect(host.sent.filter((m) => m.type === 'assign').length).toBeGreaterThan(assignsBefore);
    void id;
  });
});

describe('POST /api/tasks/:tid/migrate', () => {
  it('orders a running task off its host, for the job’s owner', async () => {
    const h = await setup();
    const alice = await h.token('alice');
    const { id, host } = await running(h, alice, 1);
    const res = await h.app.inject({ method: 'POST', url: `/api/tasks/${id}.0/migrate`, headers: h.bearer(alice) });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ tid: `${id}.0`, from: 'ha' });
    expect(host.sent.filter((m) => m.type === 'migrate')).toEqual([{ type: 'migrate', tasks: [{ tid: `${id}.0`, attempt: 1 }] }]);
  });

  it('refuses a task that is not running, and hides other owners’ tasks', async () => {
    const h = await setup();
    const alice = await h.token('alice');
    const bob = await h.token('bob');
    const { id } = await running(h, alice, 5);
    const pending = (await h.scheduler.views.tasks(id, -1, 100)).tasks.find((t) => t.state === 'pending')!;
    const conflict = await h.app.inject({ method: 'POST', url: `/api/tasks/${pending.tid}/migrate`, headers: h.bearer(alice) });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json<{ error: { code: string } }>().error.code).toBe('E_CONFLICT');

    const foreign = await h.app.inject({ method: 'POST', url: `/api/tasks/${id}.0/migrate`, headers: h.bearer(bob) });
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json()).toEqual({ error: { code: 'E_NOT_FOUND', message: `no task ${id}.0` } });
    const admin = await h.app.inject({ method: 'POST', url: `/api/tasks/${id}.0/migrate`, headers: h.bearer(ADMIN_TOKEN) });
    expect(admin.statusCode).toBe(202);

    for (const tid of [`${id}.99`, 'nosuchjob.0', 'not-a-tid']) {
      const res = await h.app.inject({ method: 'POST', url: `/api/tasks/${tid}/migrate`, headers: h.bearer(ADMIN_TOKEN) });
      expect(res.statusCode, tid).toBe(404);
    }
    expect((await h.app.inject({ method: 'POST', url: `/api/tasks/${id}.0/migrate` })).statusCode).toBe(401);
  });
});

describe('GET /api/events', () => {
  it('replays the latest 100 events, then streams new ones as they happen', async () => {
    const h = await setup();
    const base = await listening(h);
    const id = await h.submit(ADMIN_TOKEN);
    for (let i = 0; i < 150; i++) h.events.record(migrationOf(id, i));

    const sse = await openSse(`${base}/api/events`, h.bearer(ADMIN_TOKEN));
    expect(sse.response.status).toBe(200);
    expect(sse.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const replayed = await sse.frames(100);
    expect(replayed.map(frameId)).toEqual(Array.from({ length: 100 }, (_, i) => 51 + i));
    expect(replayed[99]).toBe(`id: 150\nevent: migration\ndata: ${JSON.stringify({ id: 150, ...migrationOf(id, 149) })}`);

    h.events.record(migrationOf(id, 150));
    expect((await sse.frames(1)).map(frameId)).toEqual([151]);
    sse.abort();
  });

  it('goes on after Last-Event-ID or ?after, with nothing missed or repeated around the switch to live', async () => {
    const h = await setup();
    const base = await listening(h);
    const id = await h.submit(ADMIN_TOKEN);
    for (let i = 0; i < 5; i++) h.events.record(migrationOf(id, i));

    const resumed = await openSse(`${base}/api/events`, { ...h.bearer(ADMIN_TOKEN), 'last-event-id': '3' });
    h.events.record(migrationOf(id, 5));
    expect((await resumed.frames(3)).map(frameId)).toEqual([4, 5, 6]);
    resumed.abort();

    const after = await openSse(`${base}/api/events?after=0`, h.bearer(ADMIN_TOKEN));
    expect((await after.frames(6)).map(frameId)).toEqual([1, 2, 3, 4, 5, 6]);
    after.abort();

    for (const query of ['after=soon', 'after=-1', `job=${id}&job=${id}`]) {
      const bad = await fetch(`${base}/api/events?${query}`, { headers: h.bearer(ADMIN_TOKEN) });
      expect(bad.status, query).toBe(400);
      expect((await bad.json()) as unknown).toMatchObject({ error: { code: 'E_BAD_REQUEST' } });
    }
  });

  it('shows a token only its own jobs’ events, and ?job only that job’s', async () => {
    const h = await setup();
    const base = await listening(h);
    const alice = await h.token('alice');
    const bob = await h.token('bob');
    const a1 = await h.submit(alice);
    const a2 = await h.submit(alice);
    const b1 = await h.submit(bob);
    for (const job of [a1, b1, a2]) h.events.record(migrationOf(job));

    const own = await openSse(`${base}/api/events?after=0`, h.bearer(alice));
    const latest = await openSse(`${base}/api/events`, h.bearer(alice));
    const one = await openSse(`${base}/api/events?job=${a2}&after=0`, h.bearer(alice));
    for (const job of [b1, a1, a2]) h.events.record(migrationOf(job));
    expect((await own.frames(4)).map(frameId)).toEqual([1, 3, 5, 6]);
    expect((await latest.frames(4)).map(frameId)).toEqual([1, 3, 5, 6]);
    expect((await one.frames(2)).map(frameId)).toEqual([3, 6]);
    for (const stream of [own, latest, one]) stream.abort();

    const foreign = await fetch(`${base}/api/events?job=${b1}`, { headers: h.bearer(alice) });
    expect(foreign.status).toBe(404);
    expect((await fetch(`${base}/api/events`)).status).toBe(401);
  });

  it('lets go of the subscription when the client goes away', async () => {
    const h = await setup();
    const base = await listening(h);
    const subscribe = h.events.subscribe.bind(h.events);
    const unsubscribed = vi.fn();
    vi.spyOn(h.events, 'subscribe').mockImplementation((subscriber) => {
      const off = subscribe(subscriber);
      return () => {
        unsubscribed();
        off();
      };
    });
    const sse = await openSse(`${base}/api/events`, h.bearer(ADMIN_TOKEN));
    expect(unsubscribed).not.toHaveBeenCalled();
    sse.abort();
    await vi.waitFor(() => expect(unsubscribed).toHaveBeenCalledTimes(1));
  });

  it('ends open streams when the event log closes, so that the server can stop', async () => {
    const h = await setup();
    const base = await listening(h);
    const sse = await openSse(`${base}/api/events`, h.bearer(ADMIN_TOKEN));
    const late = h.events.close();
    await sse.ended();
    await late;
    const started = Date.now();
    await h.app.close();
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
