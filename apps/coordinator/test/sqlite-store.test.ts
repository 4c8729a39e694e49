import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MigrationEvent } from '@webpvm/vm-protocol';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { type StoredJob, emptyBatch } from '../src/store/store.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const job = (id: string, createdAt: number, owner = 'alice'): StoredJob => ({
  id,
  owner,
  name: `job ${id}`,
  options: { kind: 'bag', roots: 2, replicas: 1, quorum: 1, maxAttempts: 3, taskTimeoutMs: null, priority: 1, seed: 1 },
  programHash: 'abc',
  state: 'running',
  total: 2,
  createdAt,
  finishedAt: null,
  error: null,
  attempts: 0,
  migrations: 0,
});

const task = (jobId: string, index: number, input: unknown) => ({
  tid: `${jobId}.${index}`,
  jobId,
  index,
  parent: null,
  name: null,
  input,
  state: 'pending' as const,
  attempt: 0,
  hostId: null,
  result: null,
  error: null,
  checkpoint: null,
  messagesIn: 0,
  messagesOut: 0,
});

const migration = (id: number, jobId: string): MigrationEvent => ({
  id,
  type: 'migration',
  jobId,
  tid: `${jobId}.0`,
  reason: 'input',
  from: 'ha',
  to: 'hb',
  at: new Date(id * 1000).toISOString(),
  obtrusivenessMs: 3,
  latencyMs: 40,
  bytes: 1024,
  path: 'channel',
  frozen: true,
});

describe('SqliteStore', () => {
  it('keeps jobs, tasks, results and checkpoints across a reopen of the file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-store-'));
    dirs.push(dir);
    const file = path.join(dir, 'nested', 'db.sqlite');
    const store = new SqliteStore(file);
    await store.commit({ ...emptyBatch(), jobs: [job('j1', 1)], newTasks: [task('j1', 0, { a: 1 }), task('j1', 1, [2])] });
    await store.commit({
      ...emptyBatch(),
      taskUpdates: [
        { tid: 'j1.0', state: 'done', attempt: 1, hostId: 'h1', result: { pi: 3.14 }, error: null, messagesIn: 3, messagesOut: 4 },
      ],
      checkpoints: [{ tid: 'j1.1', checkpoint: { state: { i: 9 }, rng: [1, 2, 3, 4] } }],
    });
    await store.close();

    const reopened = new SqliteStore(file);
    expect(await reopened.getResults('j1', 2)).toEqual([{ pi: 3.14 }, null]);
    expect(await reopened.getResults('j1', 1)).toEqual([{ pi: 3.14 }]);
    expect((await reopened.getTasks('j1'))[0]).toMatchObject({ tid: 'j1.0', state: 'done', messagesIn: 3, messagesOut: 4 });
    expect(await reopened.taskCounts('j1')).toEqual({ total: 2, pending: 1, running: 0, done: 1, failed: 0 });
    const { jobs, tasks } = await reopened.loadUnfinished();
    expect(jobs.map((j) => j.id)).toEqual(['j1']);
    expect(tasks[1]).toMatchObject({ tid: 'j1.1', input: [2], checkpoint: { state: { i: 9 }, rng: [1, 2, 3, 4] } });
    await reopened.close();
  });

  it('leaves finished jobs out of what a restart resumes', async () => {
    const store = new SqliteStore(':memory:');
    await store.commit({ ...emptyBatch(), jobs: [job('j1', 1), job('j2', 2)] });
    await store.commit({ ...emptyBatch(), jobs: [{ ...job('j1', 1), state: 'done', finishedAt: 5 }] });
    expect((await store.loadUnfinished()).jobs.map((j) => j.id)).toEqual(['j2']);
    expect((await store.getJob('j1'))?.finishedAt).toBe(5);
    await store.close();
  });

  it('reads a job stored before jobs had a seed as seeded with the default, 1', async () => {
    const store = new SqliteStore(':memory:');
    const { seed: _, ...options } = job('j1', 1).options;
    await store.commit({ ...emptyBatch(), jobs: [{ ...job('j1', 1), options: options as StoredJob['options'] }, { ...job('j2', 2), options: { ...options, seed: 7 } }] });
    expect((await store.getJob('j1'))?.options.seed).toBe(1);
    expect((await store.getJob('j2'))?.options.seed).toBe(7);
    await store.close();
  });

  it('lists jobs newest first, all for admins and only their own for others', async () => {
    const store = new SqliteStore(':memory:');
    await store.commit({ ...emptyBatch(), jobs: [job('j1', 1), job('j2', 2, 'bob'), job('j3', 3)] });
    expect((await store.listJobs({ owner: null, limit: 10 })).map((j) => j.id)).toEqual(['j3', 'j2', 'j1']);
    expect((await store.listJobs({ owner: 'alice', limit: 10 })).map((j) => j.id)).toEqual(['j3', 'j1']);
    expect((await store.listJobs({ owner: null, limit: 1 })).map((j) => j.id)).toEqual(['j3']);
    await store.close();
  });

  it('rolls back a whole batch when one write fails', async () => {
    const store = new SqliteStore(':memory:');
    await expect(
      store.commit({ ...emptyBatch(), jobs: [job('j1', 1)], newTasks: [task('j1', 0, 1), task('j1', 0, 1)] }),
    ).rejects.toThrow();
    expect(await store.getJob('j1')).toBeNull();
    await store.close();
  });

  it('stores tokens by hash, programs by content hash, and hosts', async () => {
    const store = new SqliteStore(':memory:');
    expect(await store.countTokens()).toBe(0);
    await store.insertToken({ id: 't1', name: 'admin', hash: 'deadbeef', admin: true, createdAt: 1 });
    expect(await store.findToken('deadbeef')).toEqual({ id: 't1', name: 'admin', hash: 'deadbeef', admin: true, createdAt: 1 });
    expect(await store.findToken('other')).toBeNull();
    await store.putProgram('h1', 'export default 1');
    await store.putProgram('h1', 'ignored: same hash');
    expect(await store.getProgram('h1')).toBe('export default 1');
    const host = { hostId: 'h1', secretHash: 's', userAgent: 'ua', createdAt: 1, lastSeenAt: 2, done: 3 };
    await store.commit({ ...emptyBatch(), hosts: [host] });
    await store.commit({ ...emptyBatch(), hosts: [{ ...host, done: 4, secretHash: 'not-overwritten' }] });
    expect(await store.getHost('h1')).toEqual({ ...host, done: 4 });
    await store.close();
  });

  it('lists events after an id or the latest ones, oldest first, of a job or of an owner', async () => {
    const store = new SqliteStore(':memory:');
    await store.commit({ ...emptyBatch(), jobs: [job('ja', 1), job('jb', 2, 'bob')] });
    expect(await store.lastEventId()).toBe(0);
    await store.appendEvents([migration(1, 'ja'), migration(2, 'jb'), migration(3, 'ja')]);
    await store.appendEvents([migration(4, 'jb'), migration(5, 'ja')]);
    const ids = (events: MigrationEvent[]) => events.map((e) => e.id);

    expect(await store.lastEventId()).toBe(5);
    expect(await store.listEvents({ jobId: null, owner: null, afterId: 0, limit: 10 })).toEqual([1, 2, 3, 4, 5].map((id) => migration(id, id % 2 ? 'ja' : 'jb')));
    expect(ids(await store.listEvents({ jobId: null, owner: null, afterId: 2, limit: 2 }))).toEqual([3, 4]);
    expect(ids(await store.listEvents({ jobId: null, owner: null, afterId: null, limit: 2 }))).toEqual([4, 5]);
    expect(ids(await store.listEvents({ jobId: 'ja', owner: null, afterId: 1, limit: 10 }))).toEqual([3, 5]);
    expect(ids(await store.listEvents({ jobId: 'ja', owner: null, afterId: null, limit: 1 }))).toEqual([5]);
    expect(ids(await store.listEvents({ jobId: null, owner: 'bob', afterId: 0, limit: 10 }))).toEqual([2, 4]);
    expect(ids(await store.listEvents({ jobId: null, owner: 'alice', afterId: null, limit: 2 }))).toEqual([3, 5]);
    expect(ids(await store.listEvents({ jobId: 'ja', owner: 'bob', afterId: 0, limit: 10 }))).toEqual([]);
    await expect(store.appendEvents([migration(6, 'ja'), migration(5, 'ja')])).rejects.toThrow();
    expect(await store.lastEventId()).toBe(5);
    await store.close();
  });

  it('adds the events table to a database file made before it existed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-store-'));
    dirs.push(dir);
    const file = path.join(dir, 'db.sqlite');
    await new SqliteStore(file).close();
    const old = new Database(file);
    old.exec('DROP TABLE events');
    old.close();

    const store = new SqliteStore(file);
    await store.appendEvents([migration(7, 'ja')]);
    expect(await store.listEvents({ jobId: 'ja', owner: null, afterId: 0, limit: 10 })).toEqual([migration(7, 'ja')]);
    await store.close();
    const reopened = new SqliteStore(file);
    expect(await reopened.lastEventId()).toBe(7);
    await reopened.close();
  });
});
