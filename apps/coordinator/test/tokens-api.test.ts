import { afterEach, describe, expect, it } from 'vitest';
import { TokenAuth } from '../src/auth.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { ADMIN_TOKEN, apiHarness } from './support/api-harness.ts';
import { connect, settle } from './support/scheduler-harness.ts';

const harnesses: Awaited<ReturnType<typeof apiHarness>>[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function setup() {
  const h = await apiHarness();
  harnesses.push(h);
  const call = (token: string | null, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
    h.app.inject({ method, url, headers: token ? h.bearer(token) : {}, ...(payload === undefined ? {} : { payload: payload as object }) });
  const makeToken = async (by: string, body: object) => {
    const res = await call(by, 'POST', '/api/tokens', body);
    return { status: res.statusCode, body: res.json<{ id: string; token: string; scope: string; owner: string; expiresAt: string | null; error?: { code: string; message: string } }>() };
  };
  return { ...h, call, makeToken };
}

describe('token scopes', () => {
  it('lets a read token see its owner’s jobs and nothing else, and do nothing to them', async () => {
    const t = await setup();
    const researcher = await t.token('researcher');
    const job = await t.submit(researcher);
    const made = await t.makeToken(researcher, { name: 'for a colleague', scope: 'read' });
    expect(made.status).toBe(201);
    const reader = made.body.token;
    expect((await t.call(reader, 'GET', `/api/jobs/${job}`)).statusCode).toBe(200);
    expect((await t.call(reader, 'GET', '/api/jobs')).json<{ jobs: { id: string }[] }>().jobs.map((j) => j.id)).toEqual([job]);
    const refused = await t.call(reader, 'POST', '/api/jobs', { program: 'export default (ctx, x) => x', inputs: [1] });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ error: { code: 'E_FORBIDDEN', message: 'a read token may not submit jobs: that takes a submit token' } });
    expect((await t.call(reader, 'DELETE', `/api/jobs/${job}`)).statusCode).toBe(403);
    expect((await t.makeToken(reader, { scope: 'read' })).status).toBe(403);
    // another researcher's read token sees none of it
    const other = (await t.makeToken(await t.token('other'), { scope: 'read' })).body.token;
    expect((await t.call(other, 'GET', `/api/jobs/${job}`)).statusCode).toBe(404);
  });

  it('lets a submit token make read tokens only; an admin makes any, with an expiry', async () => {
    const t = await setup();
    const researcher = await t.token('researcher');
    for (const scope of ['submit', 'admin']) {
      const refused = await t.makeToken(researcher, { scope });
      expect(refused.status).toBe(403);
      expect(refused.body.error?.code).toBe('E_FORBIDDEN');
    }
    const made = await t.makeToken(ADMIN_TOKEN, { name: 'ci', scope: 'submit', expiresInDays: 30 });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ scope: 'submit', owner: made.body.id });
    expect(Date.parse(made.body.expiresAt!) - Date.now()).toBeGreaterThan(29 * 24 * 3600 * 1000);
    // the older form still works
    expect((await t.makeToken(ADMIN_TOKEN, { admin: true })).body.scope).toBe('admin');
  });

  it('refuses a token once it has expired', async () => {
    const t = await setup();
    const brief = (await t.makeToken(ADMIN_TOKEN, { scope: 'submit', expiresInDays: 0.3 / 86_400 })).body.token;
    expect((await t.call(brief, 'GET', '/api/jobs')).statusCode).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const refused = await t.call(brief, 'GET', '/api/jobs');
    expect(refused.statusCode).toBe(401);
    expect(refused.json()).toEqual({ error: { code: 'E_UNAUTHORIZED', message: 'this token has expired' } });
  });

  it('revokes a token at once: an admin any, a researcher only its own owner’s, and lists them without secrets', async () => {
    const t = await setup();
    const researcher = await t.token('researcher');
    const reader = (await t.makeToken(researcher, { name: 'reader', scope: 'read' })).body;
    const stranger = await t.token('stranger');
    expect((await t.call(stranger, 'DELETE', `/api/tokens/${reader.id}`)).statusCode).toBe(404);
    const listed = (await t.call(researcher, 'GET', '/api/tokens')).json<{ tokens: { id: string; name: string; revokedAt: string | null }[] }>().tokens;
    expect(listed.map((x) => x.name).sort()).toEqual(['reader', 'researcher']);
    expect(JSON.stringify(listed)).not.toContain(reader.token);
    expect((await t.call(reader.token, 'GET', '/api/tokens')).statusCode).toBe(403);

    const revoked = await t.call(researcher, 'DELETE', `/api/tokens/${reader.id}`);
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json<{ revokedAt: string | null }>().revokedAt).not.toBeNull();
    const refused = await t.call(reader.token, 'GET', '/api/jobs');
    expect(refused.json()).toEqual({ error: { code: 'E_UNAUTHORIZED', message: 'this token was revoked' } });
    // twice is not found: nothing left to revoke
    expect((await t.call(researcher, 'DELETE', `/api/tokens/${reader.id}`)).statusCode).toBe(404);
    // the admin sees every token
    expect((await t.call(ADMIN_TOKEN, 'GET', '/api/tokens')).json<{ tokens: unknown[] }>().tokens).toHaveLength(4);
  });
});

describe('quotas', () => {
  it('holds a token to its unfinished jobs, the tasks in them and the bytes of a request; only an admin sets quotas', async () => {
    const t = await setup();
    const made = await t.makeToken(ADMIN_TOKEN, { name: 'limited', quotas: { jobs: 2, tasks: 5, bytes: 2048 } });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ quotas: { jobs: 2, tasks: 5, bytes: 2048 } });
    const limited = made.body.token;
    const submit = (inputs: unknown[], open = false) => t.call(limited, 'POST', '/api/jobs', { program: 'export default (ctx, x) => x', inputs, open });
    expect((await submit([1, 2], true)).statusCode).toBe(201);
    const tooMany = await submit([1, 2, 3, 4]);
    expect(tooMany.statusCode).toBe(429);
    expect(tooMany.json<{ error: { code: string; message: string } }>().error.message).toContain('5 tasks');
    expect((await submit([1])).statusCode).toBe(201);
    const third = await submit([1]);
    expect(third.statusCode).toBe(429);
    expect(third.json<{ error: { message: string } }>().error.message).toContain('2 unfinished jobs');
    const big = await submit(['x'.repeat(4096)]);
    expect(big.statusCode).toBe(413);
    // appended inputs count too
    const [open] = (await t.call(limited, 'GET', '/api/jobs')).json<{ jobs: { id: string; tasks: { total: number } }[] }>().jobs.filter((j) => j.tasks.total === 2);
    const append = (lines: number) => t.app.inject({ method: 'POST', url: `/api/jobs/${open!.id}/inputs`, headers: { ...t.bearer(limited), 'content-type': 'application/x-ndjson' }, payload: '1\n'.repeat(lines) });
    expect((await append(2)).statusCode).toBe(200);
    expect((await append(1)).statusCode).toBe(429);
    // a researcher cannot give itself or its readers quotas
    expect((await t.makeToken(await t.token('researcher'), { scope: 'read', quotas: { jobs: 1 } })).status).toBe(403);
  });
});

describe('what needs a token', () => {
  it('shows /metrics to admins only', async () => {
    const t = await setup();
    expect((await t.call(null, 'GET', '/metrics')).statusCode).toBe(401);
    expect((await t.call(await t.token('researcher'), 'GET', '/metrics')).statusCode).toBe(403);
    const admin = await t.call(ADMIN_TOKEN, 'GET', '/metrics');
    expect(admin.statusCode).toBe(200);
    expect(admin.body).toContain('webpvm_host_frames_in_total');
  });

  it('shows a researcher only the hosts running its own jobs’ tasks; an admin every host', async () => {
    const t = await setup();
    const [mine, theirs] = [await t.token('mine'), await t.token('theirs')];
    await t.submit(mine, [1]);
    connect(t.scheduler, 'ha', 1);
    connect(t.scheduler, 'hb', 1);
    await settle();
    const hostsOf = async (token: string) => (await t.call(token, 'GET', '/api/hosts')).json<{ hosts: { hostId: string }[] }>().hosts.map((h) => h.hostId).sort();
    const running = await hostsOf(mine);
    expect(running).toHaveLength(1);
    expect(await hostsOf(theirs)).toEqual([]);
    expect(await hostsOf(ADMIN_TOKEN)).toEqual(['ha', 'hb']);
  });
});

describe('guessing tokens', () => {
  it('refuses an address after 20 wrong tokens in a minute, valid ones included; requests with none do not count', async () => {
    const t = await setup();
    for (let i = 0; i < 30; i++) expect((await t.call(null, 'GET', '/api/jobs')).statusCode).toBe(401);
    for (let i = 0; i < 20; i++) expect((await t.call(`wpvm_guess-${i}`, 'GET', '/api/jobs')).statusCode).toBe(401);
    const refused = await t.call(ADMIN_TOKEN, 'GET', '/api/jobs');
    expect(refused.statusCode).toBe(429);
    expect(refused.json<{ error: { code: string } }>().error.code).toBe('E_RATE_LIMITED');
  });

  it('will not take a fixed admin token that is easy to guess', async () => {
    const store = new SqliteStore(':memory:');
    const auth = new TokenAuth(store);
    await expect(auth.bootstrap('admin')).rejects.toThrow(/too easy to guess/);
    await expect(auth.bootstrap('aaaaaaaaaaaaaaaaaaaaaaaa')).rejects.toThrow(/too easy to guess/);
    await expect(auth.bootstrap('wpvm_a-long-and-varied-one')).resolves.toBeNull();
    await store.close();
  });
});
