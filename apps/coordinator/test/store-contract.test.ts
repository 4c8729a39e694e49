import type { MigrationEvent } from '@webpvm/vm-protocol';
import type { VmState } from '@webpvm/task-sdk/vm';
import { afterAll, describe, expect, it } from 'vitest';
import { type StoredJob, emptyBatch, emptyTally } from '../src/store/store.ts';
import { job, migration } from './support/stored-records.ts';
import { type StoreAdapter, storeAdapters } from './support/store-adapters.ts';

/*
 * What every store must do, run against SQLite and against a real PostgreSQL (started for this
 * file from Debian's package): the contract the scheduler, the API and a restart rely on.
 */

const adapters = storeAdapters();
afterAll(() => Promise.all(adapters.map((a) => a.stop())));

const task = (jobId: string, index: number, input: unknown, root: number | null = index) => ({
  tid: `${jobId}.${index}`,
  jobId,
  index,
  parent: root === null ? `${jobId}.0` : null,
  root,
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
  seq: null,
});

describe.each(adapters.map((adapter) => [adapter.name, adapter] as [string, StoreAdapter]))('%s store', (_name, adapter) => {
  it('keeps volunteers’ records across a reopen, the latest write of each, and forgets those not heard of since a time', async () => {
    const volunteer = (volunteerId: string, updatedAt: number, trusted = false) => ({ volunteerId, allowance: 8, returned: 0, dropped: 0, validated: 3, invalid: 1, streak: 2, trusted, updatedAt });
    const { store, reopen } = await adapter.open();
    await store.commit({ ...emptyBatch(), volunteers: [volunteer('v1', 10), volunteer('v2', 20)] });
    await store.commit({ ...emptyBatch(), volunteers: [{ ...volunteer('v1', 30, true), allowance: 40 }] });
    await store.close();
    const reopened = await reopen();
    expect(await reopened.loadVolunteers()).toEqual([{ ...volunteer('v1', 30, true), allowance: 40 }, volunteer('v2', 20)]);
    expect(await reopened.forgetVolunteers(25, 10)).toBe(1);
    expect((await reopened.loadVolunteers()).map((v) => v.volunteerId)).toEqual(['v1']);
    await reopened.close();
  });


  it('forgets jobs finished before a time in steps of bounded rows, with their events and their program once no job uses it', async () => {
    const { store } = await adapter.open();
    const finished = (id: string, at: number | null, programHash = 'abc'): StoredJob => ({ ...job(id, 1), programHash, state: at === null ? 'running' : 'done', finishedAt: at });
    await store.commit({
      ...emptyBatch(),
      jobs: [finished('old', 100), finished('recent', 5_000), finished('live', null), finished('lone', 200, 'solo')],
      newTasks: [task('old', 0, 1), task('old', 1, 2), task('old', 2, 3), task('recent', 0, 1), task('live', 0, 1), task('lone', 0, 1)],
    });
    await store.putProgram('abc', 'export default () => 1');
    await store.putProgram('solo', 'export default () => 2');
    await store.appendEvents([{ id: 1, type: 'migration', jobId: 'old' } as unknown as MigrationEvent]);
    const steps = [];
    for (let step = await store.forgetFinished(1_000, 2); step.rows > 0; step = await store.forgetFinished(1_000, 2)) steps.push(step);
    expect(steps.every((s) => s.rows <= 2 + 2)).toBe(true);
    expect(steps.reduce((n, s) => n + s.jobs, 0)).toBe(2);
    expect(await store.getJob('old')).toBeNull();
    expect(await store.getJob('lone')).toBeNull();
    expect((await store.getJob('recent'))?.id).toBe('recent');
    expect((await store.getJob('live'))?.id).toBe('live');
    expect(await store.taskCounts('old')).toMatchObject({ total: 0 });
    expect(await store.taskCounts('recent')).toMatchObject({ total: 1 });
    expect(await store.listEvents({ jobId: 'old', owner: null, afterId: 0, limit: 10 })).toEqual([]);
    // a program still used by a job it keeps stays; one no job uses goes
    expect(await store.getProgram('abc')).not.toBeNull();
    expect(await store.getProgram('solo')).toBeNull();
    await store.close();
  });


  it('keeps jobs, tasks, results and checkpoints across a reopen', async () => {
    const { store, reopen } = await adapter.open();
    await store.commit({ ...emptyBatch(), jobs: [job('j1', 1)], newTasks: [task('j1', 0, { a: 1 }), task('j1', 1, [2])] });
    await store.commit({
      ...emptyBatch(),
      taskUpdates: [
        { tid: 'j1.0', state: 'done', attempt: 1, hostId: 'h1', result: { pi: 3.14 }, error: null, messagesIn: 3, messagesOut: 4, seq: 1, failures: 0, losses: 0 },
      ],
      checkpoints: [{ tid: 'j1.1', checkpoint: { state: { i: 9 }, rng: [1, 2, 3, 4] } }],
    });
    await store.close();

    const reopened = await reopen();
    expect(await reopened.resultsInOrder('j1', -1, 10)).toEqual([
      { index: 0, result: { pi: 3.14 } },
      { index: 1, result: null },
    ]);
    expect(await reopened.resultsInOrder('j1', -1, 1)).toEqual([{ index: 0, result: { pi: 3.14 } }]);
    expect(await reopened.outcomesAfter('j1', 0, 10)).toEqual([{ seq: 1, root: 0, ok: true, result: { pi: 3.14 }, error: null }]);
    expect((await reopened.tasksPage('j1', -1, 10))[0]).toMatchObject({ tid: 'j1.0', index: 0, state: 'done', messagesIn: 3, messagesOut: 4 });
    expect(await reopened.taskCounts('j1')).toEqual({ total: 2, pending: 1, running: 0, done: 1, failed: 0 });
    const [unfinished, ...more] = await reopened.loadUnfinished();
    expect(more).toEqual([]);
    expect(unfinished).toMatchObject({ job: { id: 'j1' }, tasks: [], spawned: 0 });
    expect([...unfinished!.pendingRoots]).toEqual([1]);
    expect(await reopened.pendingRoots('j1', 0, 2, 10)).toEqual([
      expect.objectContaining({ tid: 'j1.1', root: 1, input: [2], checkpoint: { state: { i: 9 }, rng: [1, 2, 3, 4] } }),
    ]);
    await reopened.close();
  });


  it('keeps tasks’ restart images and a job’s PVM services across a reopen, and forgets them when told', async () => {
    const { store, reopen } = await adapter.open();
    const vmState: VmState = {
      answers: [['j1.0', [[1, { ok: true, value: ['j1.1'] }]]]],
      inBarrier: [['j1.1', 3]],
      watchers: [['j1.1', [{ notifier: 'j1.0', tag: 7 }]]],
      lastSent: [],
      groups: { groups: [['crew', [['j1.0', 0], ['j1.1', 1]]]], barriers: [['crew', 2, [{ tid: 'j1.1', requestId: 3 }]]] },
    };
    const image = new Uint8Array([1, 2, 3, 250]);
    await store.commit({
      ...emptyBatch(),
      jobs: [job('j1', 1)],
      newTasks: [{ ...task('j1', 0, null), state: 'running', attempt: 1, hostId: 'h1' }, { ...task('j1', 1, null, null), state: 'running', attempt: 1, hostId: 'h1' }],
      images: [
        { tid: 'j1.1', jobId: 'j1', image, kept: null },
        { tid: 'j1.0', jobId: 'j1', image: null, kept: { hostId: 'h2', image: 7, bytes: 20_000_000, sha256: 'ab'.repeat(32) } },
      ],
      vmStates: [{ jobId: 'j1', state: vmState }],
    });
    await store.close();
    const reopened = await reopen();
    const [unfinished] = await reopened.loadUnfinished();
    expect(unfinished!.vmState).toEqual(vmState);
    expect(unfinished!.tasks.map((t) => [t.tid, t.image])).toEqual([['j1.0', null], ['j1.1', image]]);
    expect(unfinished!.tasks.map((t) => t.kept?.hostId ?? null)).toEqual(['h2', null]);
    await reopened.commit({
      ...emptyBatch(),
      images: [
        { tid: 'j1.1', jobId: 'j1', image: null, kept: null },
        { tid: 'j1.0', jobId: 'j1', image: null, kept: null },
      ],
      vmStates: [{ jobId: 'j1', state: null }],
    });
    const [again] = await reopened.loadUnfinished();
    expect(again!.vmState).toBeNull();
    expect(again!.tasks.every((t) => t.image === null && t.kept === null)).toBe(true);
    await reopened.close();
  });


  it('updates what changes of a job as it runs: its total, roots, openness and tally', async () => {
    const { store, reopen } = await adapter.open();
    await store.commit({ ...emptyBatch(), jobs: [{ ...job('j1', 1), open: true }] });
    const grown: StoredJob = {
      ...job('j1', 1),
      options: { ...job('j1', 1).options, roots: 5 },
      total: 7,
      open: false,
      tally: { ...emptyTally(), done: 3, rootsEnded: 3, resultSeq: 3 },
    };
    await store.commit({ ...emptyBatch(), jobs: [grown] });
    await store.close();
    const reopened = await reopen();
    expect(await reopened.getJob('j1')).toEqual(grown);
    expect((await reopened.loadUnfinished())[0]?.job).toEqual(grown);
    await reopened.close();
  });


  it('tells a restart only what it needs of a big job: the tasks it holds, pending roots and bad ends as indexes', async () => {
    const { store } = await adapter.open();
    const rows = Array.from({ length: 8 }, (_, i) => task('j1', i, i));
    rows.push(task('j1', 8, 'spawned', null), task('j1', 9, 'spawned too', null), task('j1', 10, 8, 8));
    await store.commit({ ...emptyBatch(), jobs: [{ ...job('j1', 1), total: 11 }], newTasks: rows });
    const update = (tid: string, state: 'running' | 'done' | 'failed' | 'cancelled', seq: number | null = null) => ({
      tid, state, attempt: 1, hostId: 'h1', result: state === 'done' ? tid : null, error: state === 'failed' ? { code: 'E_TASK_FAILED' as const, message: 'x' } : null, messagesIn: 0, messagesOut: 0, seq,
      failures: state === 'failed' ? 1 : 0, losses: state === 'running' ? 2 : 0,
    });
    await store.commit({
      ...emptyBatch(),
      taskUpdates: [update('j1.0', 'done', 1), update('j1.1', 'failed', 2), update('j1.2', 'running'), update('j1.9', 'cancelled'), update('j1.5', 'running')],
      checkpoints: [{ tid: 'j1.2', checkpoint: { state: 2, rng: [1, 2, 3, 4] } }],
    });
    const [restart] = await store.loadUnfinished();
    expect(restart!.tasks.map((t) => [t.tid, t.state])).toEqual([
      ['j1.2', 'running'],
      ['j1.5', 'running'],
      ['j1.8', 'pending'],
    ]);
    expect(restart!.tasks[0]).toMatchObject({ input: 2, root: 2, checkpoint: { state: 2 }, failures: 0, losses: 2 });
    expect([...restart!.pendingRoots]).toEqual([3, 4, 6, 7, 10]);
    expect([...restart!.endedBadly]).toEqual([1, 9]);
    expect(restart!.spawned).toBe(2);
    // pages of pending roots: from an index, below a bound, at most a limit
    expect((await store.pendingRoots('j1', 0, 11, 2)).map((t) => t.index)).toEqual([3, 4]);
    expect((await store.pendingRoots('j1', 5, 11, 10)).map((t) => [t.index, t.root, t.input])).toEqual([
      [6, 6, 6],
      [7, 7, 7],
      [10, 8, 8],
    ]);
    expect((await store.pendingRoots('j1', 5, 10, 10)).map((t) => t.index)).toEqual([6, 7]);
    // outcomes by cursor, results and tasks by index
    expect(await store.outcomesAfter('j1', 0, 10)).toEqual([
      { seq: 1, root: 0, ok: true, result: 'j1.0', error: null },
      { seq: 2, root: 1, ok: false, result: null, error: { code: 'E_TASK_FAILED', message: 'x' } },
    ]);
    expect(await store.outcomesAfter('j1', 1, 10)).toHaveLength(1);
    expect((await store.resultsInOrder('j1', 6, 10)).map((r) => r.index)).toEqual([7, 10]);
    expect((await store.tasksPage('j1', 7, 2)).map((t) => [t.tid, t.parent])).toEqual([
      ['j1.8', 'j1.0'],
      ['j1.9', 'j1.0'],
    ]);
    await store.close();
  });


  it('marks a cancelled job’s pending roots cancelled in parts, and finds those a stop left', async () => {
    const { store } = await adapter.open();
    await store.commit({
      ...emptyBatch(),
      jobs: [{ ...job('j1', 1), state: 'cancelled', finishedAt: 2 }, job('j2', 2)],
      newTasks: [...Array.from({ length: 5 }, (_, i) => task('j1', i, i)), task('j1', 5, 's', null), task('j2', 0, 0)],
    });
    expect(await store.cancelledWithPending()).toEqual(['j1']);
    expect(await store.cancelPendingRoots('j1', 3)).toBe(3);
    expect(await store.cancelledWithPending()).toEqual(['j1']);
    expect(await store.cancelPendingRoots('j1', 3)).toBe(2);
    expect(await store.cancelPendingRoots('j1', 3)).toBe(0);
    expect(await store.cancelledWithPending()).toEqual([]);
    expect(await store.taskCounts('j1')).toMatchObject({ total: 6, pending: 1 });
    expect(await store.taskCounts('j2')).toMatchObject({ total: 1, pending: 1 });
    await store.close();
  });


  it('leaves finished jobs out of what a restart resumes, and resumes only the jobs named when named', async () => {
    const { store } = await adapter.open();
    await store.commit({ ...emptyBatch(), jobs: [job('j1', 1), job('j2', 2)] });
    await store.commit({ ...emptyBatch(), jobs: [{ ...job('j1', 1), state: 'done', finishedAt: 5 }] });
    expect((await store.loadUnfinished()).map((u) => u.job.id)).toEqual(['j2']);
    expect((await store.loadUnfinished(['j1', 'j2', 'nope'])).map((u) => u.job.id)).toEqual(['j2']);
    expect(await store.loadUnfinished([])).toEqual([]);
    expect((await store.getJob('j1'))?.finishedAt).toBe(5);
    await store.close();
  });


  it('reads a job stored before jobs had a seed as seeded with the default, 1', async () => {
    const { store } = await adapter.open();
    const { seed: _, ...options } = job('j1', 1).options;
    await store.commit({ ...emptyBatch(), jobs: [{ ...job('j1', 1), options: options as StoredJob['options'] }, { ...job('j2', 2), options: { ...options, seed: 7 } }] });
    expect((await store.getJob('j1'))?.options.seed).toBe(1);
    expect((await store.getJob('j2'))?.options.seed).toBe(7);
    await store.close();
  });


  it('lists jobs newest first, all for admins and only their own for others', async () => {
    const { store } = await adapter.open();
    await store.commit({ ...emptyBatch(), jobs: [job('j1', 1), job('j2', 2, 'bob'), job('j3', 3)] });
    expect((await store.listJobs({ owner: null, limit: 10 })).map((j) => j.id)).toEqual(['j3', 'j2', 'j1']);
    expect((await store.listJobs({ owner: 'alice', limit: 10 })).map((j) => j.id)).toEqual(['j3', 'j1']);
    expect((await store.listJobs({ owner: null, limit: 1 })).map((j) => j.id)).toEqual(['j3']);
    await store.close();
  });


  it('rolls back a whole batch when one write fails', async () => {
    const { store } = await adapter.open();
    await expect(
      store.commit({ ...emptyBatch(), jobs: [job('j1', 1)], newTasks: [task('j1', 0, 1), task('j1', 0, 1)] }),
    ).rejects.toThrow();
    expect(await store.getJob('j1')).toBeNull();
    await store.close();
  });


  it('stores tokens by hash, programs by content hash, and hosts', async () => {
    const { store } = await adapter.open();
    expect(await store.countTokens()).toBe(0);
    const admin = { id: 't1', name: 'admin', hash: 'deadbeef', scope: 'admin' as const, owner: 't1', createdAt: 1, expiresAt: null, revokedAt: null, quotas: {} };
    const reader = { id: 't2', name: 'reader', hash: 'cafe', scope: 'read' as const, owner: 't3', createdAt: 2, expiresAt: 99, revokedAt: null, quotas: { jobs: 2, running: 8 } };
    await store.insertToken(admin);
    await store.insertToken(reader);
    expect(await store.findToken('deadbeef')).toEqual(admin);
    expect(await store.findToken('other')).toBeNull();
    expect(await store.listTokens(null, 10)).toEqual([reader, admin]);
    expect(await store.listTokens('t3', 10)).toEqual([reader]);
    expect(await store.revokeToken('t2', 50)).toBe(true);
    expect(await store.revokeToken('t2', 60)).toBe(false);
    expect(await store.getToken('t2')).toEqual({ ...reader, revokedAt: 50 });
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
    const { store } = await adapter.open();
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
});
