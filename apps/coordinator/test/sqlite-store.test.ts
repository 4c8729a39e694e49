import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { job, migration } from './support/stored-records.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/* What only SQLite has to do: bring a file made by an older coordinator up to date (store-contract.test.ts has the rest). */
describe('SqliteStore', () => {
  it('fills in tallies, input places and cursors in a file made before they existed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-store-'));
    dirs.push(dir);
    const file = path.join(dir, 'db.sqlite');
    const old = new Database(file);
    old.exec(`CREATE TABLE jobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, options TEXT NOT NULL,
      program_hash TEXT NOT NULL, state TEXT NOT NULL, total INTEGER NOT NULL, created_at INTEGER NOT NULL, finished_at INTEGER,
      error TEXT, attempts INTEGER NOT NULL, migrations INTEGER NOT NULL);
      CREATE TABLE tasks (tid TEXT PRIMARY KEY, job_id TEXT NOT NULL, idx INTEGER NOT NULL, parent TEXT, name TEXT, input TEXT NOT NULL,
      state TEXT NOT NULL, attempt INTEGER NOT NULL, host_id TEXT, result TEXT, error TEXT, checkpoint TEXT,
      messages_in INTEGER NOT NULL DEFAULT 0, messages_out INTEGER NOT NULL DEFAULT 0);
      CREATE INDEX tasks_job ON tasks(job_id, idx);`);
    const { open: _open, tally: _tally, ...before } = job('j1', 1);
    old.prepare(`INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      before.id, before.owner, before.name, JSON.stringify({ ...before.options, roots: 3 }), 'abc', 'running', 4, 1, null, null, 3, 0,
    );
    const insert = old.prepare(`INSERT INTO tasks (tid, job_id, idx, parent, input, state, attempt, result, error) VALUES (?, 'j1', ?, ?, '0', ?, 1, ?, ?)`);
    insert.run('j1.0', 0, null, 'done', '"r0"', null);
    insert.run('j1.1', 1, null, 'failed', null, JSON.stringify({ code: 'E_TASK_FAILED', message: 'boom' }));
    insert.run('j1.2', 2, null, 'pending', null, null);
    insert.run('j1.3', 3, 'j1.0', 'done', '"child"', null);
    old.close();

    const store = new SqliteStore(file);
    expect((await store.getJob('j1'))?.tally).toEqual({ done: 2, failed: 1, cancelled: 0, rootsEnded: 2, rootsFailed: 1, firstFailure: 'boom', resultSeq: 2 });
    expect((await store.outcomesAfter('j1', 0, 10)).map((o) => [o.seq, o.root, o.ok])).toEqual([
      [1, 0, true],
      [2, 1, false],
    ]);
    expect((await store.resultsInOrder('j1', -1, 10)).map((r) => r.result)).toEqual(['r0', null, null]);
    const [restart] = await store.loadUnfinished();
    expect([...restart!.pendingRoots]).toEqual([2]);
    expect(restart!.spawned).toBe(1);
    await store.close();
  });


  it('gives tokens made before scopes existed theirs: admin stays admin, the others submit and own their jobs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-store-'));
    dirs.push(dir);
    const file = path.join(dir, 'db.sqlite');
    const old = new Database(file);
    old.exec(`CREATE TABLE tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, admin INTEGER NOT NULL, created_at INTEGER NOT NULL);
      INSERT INTO tokens VALUES ('a', 'admin', 'h-admin', 1, 1), ('r', 'researcher', 'h-researcher', 0, 2);`);
    old.close();
    const store = new SqliteStore(file);
    expect(await store.findToken('h-admin')).toEqual({ id: 'a', name: 'admin', hash: 'h-admin', scope: 'admin', owner: 'a', createdAt: 1, expiresAt: null, revokedAt: null, quotas: {} });
    expect(await store.findToken('h-researcher')).toMatchObject({ scope: 'submit', owner: 'r' });
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
