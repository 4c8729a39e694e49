import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebpvmError } from '@webpvm/vm-protocol';
import type Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { emptyBatch } from '../src/store/store.ts';
import { ADMIN_TOKEN, apiHarness } from './support/api-harness.ts';
import { connect, resultsOf, schedulerHarness, settle, spec } from './support/scheduler-harness.ts';

const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function storeFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-store-failure-'));
  dirs.push(dir);
  return path.join(dir, 'webpvm.sqlite');
}

/** The store's own connection: `max_page_count` is a limit of the connection that writes. */
const connectionOf = (store: SqliteStore) => (store as unknown as { db: Database.Database }).db;

/** The file may grow no more: a write that needs a new page fails with SQLITE_FULL, as on a full disk. */
function fillUp(store: SqliteStore): void {
  const db = connectionOf(store);
  db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
}

function makeRoom(store: SqliteStore): void {
  connectionOf(store).pragma('max_page_count = 1073741823');
}

/** More than a page: a row holding it needs pages the full file does not have. */
const BIG = 'x'.repeat(10_000);

/** Settles within `ms` or fails: a request or an ack left waiting on a failed write is the bug. */
function within<T>(promise: Promise<T>, ms = 3_000): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms).unref())]);
}

async function until(condition: () => Promise<boolean>, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not so after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function api() {
  const store = new SqliteStore(storeFile());
  const h = await apiHarness('/nonexistent', store);
  closers.push(() => h.close());
  const admin = h.bearer(ADMIN_TOKEN);
  const get = (url: string) => within(h.app.inject({ method: 'GET', url, headers: admin }));
  const submit = (payload: Record<string, unknown>) => within(h.app.inject({ method: 'POST', url: '/api/jobs', headers: admin, payload }));
  return { ...h, store, admin, get, submit };
}

describe('a store that cannot write', () => {
  it('answers 503 E_STORE_UNAVAILABLE and a failing /healthz while a commit fails, and recovers once the commit goes through', async () => {
    const h = await api();
    const first = await h.submit({ program: 'export default (ctx, x) => x', inputs: [1] });
    expect(first.statusCode).toBe(201);
    expect((await h.get('/healthz')).json()).toEqual({ ok: true, hosts: 0, store: 'sqlite' });

    fillUp(h.store);
    const refused = await h.submit({ program: 'export default (ctx, x) => x', inputs: [BIG] });
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    const { error } = refused.json<{ error: { code: string; message: string } }>();
    expect(error.code).toBe('E_STORE_UNAVAILABLE');
    expect(error.message).toMatch(/SQLITE_FULL/);
    // the job is in memory and kept for the retry: the client is told which, not to send it again blindly
    const kept = /job (\w+) is kept/.exec(error.message)?.[1];
    expect(kept).toBeDefined();

    const health = await h.get('/healthz');
    expect(health.statusCode).toBe(503);
    expect(health.json()).toMatchObject({ ok: false, hosts: 0, reason: expect.stringMatching(/SQLITE_FULL/), since: expect.any(String) });
    // more changes are refused before they touch memory; reads that need what is not stored are refused too
    expect((await h.submit({ program: 'export default (ctx, x) => x', inputs: [2] })).json()).toMatchObject({ error: { code: 'E_STORE_UNAVAILABLE' } });
    expect(h.scheduler.jobs.active.size).toBe(2);
    expect((await h.get(`/api/jobs/${kept}/results`)).statusCode).toBe(503);
    expect((await h.get(`/api/jobs/${kept}/tasks`)).statusCode).toBe(503);
    expect(await h.store.getJob(kept!)).toBeNull();

    makeRoom(h.store);
    const results = await h.get(`/api/jobs/${kept}/results`);
    expect(results.statusCode).toBe(200);
    expect(results.json()).toEqual({ results: [null] });
    expect(await h.store.getJob(kept!)).toMatchObject({ id: kept, total: 1 });
    expect((await h.get('/healthz')).json()).toEqual({ ok: true, hosts: 0, store: 'sqlite' });
    expect((await h.submit({ program: 'export default (ctx, x) => x', inputs: [BIG] })).statusCode).toBe(201);
  });

  it('retries a failed commit by itself: /healthz recovers with no request to push it', async () => {
    const h = await api();
    await h.submit({ program: 'export default (ctx, x) => x', inputs: [1] });
    fillUp(h.store);
    expect((await h.submit({ program: 'export default (ctx, x) => x', inputs: [BIG] })).statusCode).toBe(503);
    expect((await h.get('/healthz')).statusCode).toBe(503);
    makeRoom(h.store);
    await until(async () => (await h.get('/healthz')).statusCode === 200);
    expect(await h.store.taskCounts((await h.store.listJobs({ owner: null, limit: 1 }))[0]!.id)).toMatchObject({ total: 1, pending: 1 });
  });

  it('makes a failed one-off write (a program) fail /healthz until a probe write succeeds', async () => {
    const h = await api();
    fillUp(h.store);
    const refused = await h.submit({ program: `export default (ctx, x) => x + ${JSON.stringify(BIG)}`, inputs: [1] });
    expect(refused.statusCode).toBe(503);
    expect(refused.json()).toMatchObject({ error: { code: 'E_STORE_UNAVAILABLE', message: expect.stringMatching(/SQLITE_FULL/) } });
    expect(h.scheduler.jobs.active.size).toBe(0);
    expect((await h.get('/healthz')).statusCode).toBe(503);
    // the probe needs a page as the program did: a full file does not pass it
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await h.get('/healthz')).statusCode).toBe(503);
    makeRoom(h.store);
    await until(async () => (await h.get('/healthz')).statusCode === 200);
    expect((await h.submit({ program: `export default (ctx, x) => x + ${JSON.stringify(BIG)}`, inputs: [1] })).statusCode).toBe(201);
  });

  it('holds a host’s ack back while its results cannot be stored, and acks them once they are', async () => {
    const store = new SqliteStore(storeFile());
    closers.push(() => store.close());
    const { scheduler } = schedulerHarness({ store });
    scheduler.jobs.submit(spec([1]), 'p', 'owner', 'job1');
    await scheduler.writes.durable();
    const host = connect(scheduler, 'ha', 1);
    await settle();
    const [task] = host.assigned();
    expect(task).toBeDefined();

    fillUp(store);
    scheduler.reports.outcomes('ha', [{ tid: task!.tid, attempt: task!.attempt, ok: true, value: BIG }]);
    const refused = await within(scheduler.writes.durable().then(() => null, (error: unknown) => error));
    expect(refused).toBeInstanceOf(WebpvmError);
    expect((refused as WebpvmError).code).toBe('E_STORE_UNAVAILABLE');
    expect(host.of('ack')).toEqual([]);
    expect(store.health()).toMatchObject({ ok: false, reason: expect.stringMatching(/SQLITE_FULL/) });
    expect(await resultsOf(store, 'job1')).toEqual([null]);

    makeRoom(store);
    await within(scheduler.writes.durable());
    expect(host.of('ack').flatMap((m) => m.tasks)).toEqual([{ tid: task!.tid, attempt: task!.attempt }]);
    expect(await resultsOf(store, 'job1')).toEqual([BIG]);
    expect(store.health()).toEqual({ ok: true });
  });

  it('fails writes to a database file removed under it, rather than acknowledge what a restart would not find', async () => {
    const file = storeFile();
    const store = new SqliteStore(file);
    closers.push(() => store.close());
    await store.commit(emptyBatch());
    fs.rmSync(file);
    const error = await within(store.commit(emptyBatch()).then(() => null, (e: unknown) => e));
    expect(error).toBeInstanceOf(WebpvmError);
    expect(error).toMatchObject({ code: 'E_STORE_UNAVAILABLE', message: expect.stringMatching(/removed/) });
    expect(await store.probe()).toMatchObject({ ok: false });
  });

  it('leaves a request’s own fault (a constraint) as it was, the store healthy', async () => {
    const store = new SqliteStore(storeFile());
    closers.push(() => store.close());
    const token = { id: 't1', name: 'x', hash: 'h', scope: 'submit' as const, owner: 't1', createdAt: 0, expiresAt: null, revokedAt: null, quotas: {} };
    await store.insertToken(token);
    const error = await store.insertToken({ ...token, id: 't2' }).then(() => null, (e: unknown) => e);
    expect(error).not.toBeInstanceOf(WebpvmError);
    expect(error).toMatchObject({ code: 'SQLITE_CONSTRAINT_UNIQUE' });
    expect(store.health()).toEqual({ ok: true });
  });
});

describe('durability', () => {
  it('syncs every commit (synchronous FULL) unless WEBPVM_SQLITE_SYNCHRONOUS=normal', async () => {
    const synchronous = (store: SqliteStore) => connectionOf(store).pragma('synchronous', { simple: true });
    const full = new SqliteStore(storeFile(), { synchronous: loadConfig({}).sqliteSynchronous });
    const normal = new SqliteStore(storeFile(), { synchronous: loadConfig({ WEBPVM_SQLITE_SYNCHRONOUS: 'normal' }).sqliteSynchronous });
    closers.push(() => full.close(), () => normal.close());
    expect(synchronous(full)).toBe(2);
    expect(synchronous(normal)).toBe(1);
    expect(() => loadConfig({ WEBPVM_SQLITE_SYNCHRONOUS: 'off' })).toThrow(/"full" or "normal"/);
  });
});
