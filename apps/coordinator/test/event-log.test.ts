import type { MigrationEvent } from '@webpvm/vm-protocol';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventLog } from '../src/event-log.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';

const log = pino({ level: 'silent' });
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const stores: SqliteStore[] = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const s of stores.splice(0)) await s.close();
});

function memoryStore(): SqliteStore {
  const store = new SqliteStore(':memory:');
  stores.push(store);
  return store;
}

const fields = (jobId: string, n = 0): Omit<MigrationEvent, 'id'> => ({
  type: 'migration',
  jobId,
  tid: `${jobId}.${n}`,
  reason: 'order',
  from: 'ha',
  to: 'hb',
  at: '2026-01-01T00:00:00.000Z',
  obtrusivenessMs: 2,
  latencyMs: 30,
  bytes: 512,
  path: 'coordinator',
  frozen: true,
});

const ids = (events: MigrationEvent[]) => events.map((e) => e.id);
const everything = { jobId: null, owner: null, afterId: 0, limit: 100 };

describe('EventLog', () => {
  it('with several coordinators, numbers events from blocks of ids the store gives it alone, asking for the next half a block ahead', async () => {
    const store = memoryStore();
    const given = [1001, 3001];
    const asked: number[] = [];
    const blocks = { size: 4, next: async () => (asked.push(given[asked.length]!), given[asked.length - 1]!) };
    const events = await EventLog.open(store, log, undefined, blocks);
    for (let i = 0; i < 2; i++) events.record(fields('ja', i));
    expect(asked).toEqual([1001]);
    events.record(fields('ja', 2));
    expect(asked).toEqual([1001, 3001]);
    await turn();
    for (let i = 3; i < 6; i++) events.record(fields('ja', i));
    expect(ids(await events.list(everything))).toEqual([1001, 1002, 1003, 1004, 3001, 3002]);
    await events.close();
  });

  it('numbers events on from the largest id in the store', async () => {
    const store = memoryStore();
    await store.appendEvents([{ id: 41, ...fields('ja') }]);
    const events = await EventLog.open(store, log);
    events.record(fields('ja', 1));
    events.record(fields('jb'));
    expect(ids(await events.list(everything))).toEqual([41, 42, 43]);
    await events.close();
    expect(await store.lastEventId()).toBe(43);
  });

  it('writes the events of one turn in one batch, behind the record call', async () => {
    const store = memoryStore();
    const append = vi.spyOn(store, 'appendEvents');
    const events = await EventLog.open(store, log);
    events.record(fields('ja', 0));
    events.record(fields('ja', 1));
    events.record(fields('ja', 2));
    expect(append).not.toHaveBeenCalled();
    await turn();
    await turn();
    expect(append).toHaveBeenCalledTimes(1);
    expect(ids(append.mock.calls[0]![0])).toEqual([1, 2, 3]);
    await events.close();
  });

  it('loses nothing on a clean close, and retries a write the store refused', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const store = memoryStore();
    const append = vi.spyOn(store, 'appendEvents').mockRejectedValueOnce(new Error('disk full'));
    const events = await EventLog.open(store, log);
    events.record(fields('ja', 0));
    await turn();
    await turn();
    events.record(fields('ja', 1));
    const closed = events.close();
    await vi.runAllTimersAsync();
    await closed;
    expect(append.mock.calls.length).toBeGreaterThanOrEqual(2);
    expect(ids(await store.listEvents(everything))).toEqual([1, 2]);
  });

  it('hands each event to every subscriber as it is recorded, until it unsubscribes', async () => {
    const events = await EventLog.open(memoryStore(), log);
    const a: number[] = [];
    const b: number[] = [];
    const offA = events.subscribe({ event: (e) => a.push(e.id), end: () => undefined });
    events.subscribe({ event: (e) => b.push(e.id), end: () => undefined });
    events.record(fields('ja'));
    offA();
    events.record(fields('ja'));
    expect(a).toEqual([1]);
    expect(b).toEqual([1, 2]);
    await events.close();
  });

  it('drops a subscriber that throws, and goes on with the others', async () => {
    const events = await EventLog.open(memoryStore(), log);
    const seen: number[] = [];
    const broken = vi.fn(() => {
      throw new Error('socket gone');
    });
    events.subscribe({ event: broken, end: () => undefined });
    events.subscribe({ event: (e) => seen.push(e.id), end: () => undefined });
    events.record(fields('ja'));
    events.record(fields('ja'));
    expect(broken).toHaveBeenCalledTimes(1);
    expect(seen).toEqual([1, 2]);
    await events.close();
  });

  it('ends every subscriber on close, and one that comes later at once', async () => {
    const events = await EventLog.open(memoryStore(), log);
    const early = { event: vi.fn(), end: vi.fn() };
    events.subscribe(early);
    await events.close();
    expect(early.end).toHaveBeenCalledTimes(1);
    const late = { event: vi.fn(), end: vi.fn() };
    events.subscribe(late);
    expect(late.end).toHaveBeenCalledTimes(1);
    events.record(fields('ja'));
    expect(late.event).not.toHaveBeenCalled();
  });

  it('answers from memory what it holds, and from the store what it no longer holds', async () => {
    const store = memoryStore();
    const events = await EventLog.open(store, log, 3);
    const read = vi.spyOn(store, 'listEvents');
    for (const job of ['ja', 'jb', 'ja', 'jb', 'ja']) events.record(fields(job));

    expect(ids(await events.list({ jobId: null, owner: null, afterId: 2, limit: 10 }))).toEqual([3, 4, 5]);
    expect(ids(await events.list({ jobId: 'ja', owner: null, afterId: 2, limit: 1 }))).toEqual([3]);
    expect(ids(await events.list({ jobId: null, owner: null, afterId: null, limit: 2 }))).toEqual([4, 5]);
    expect(read).not.toHaveBeenCalled();

    expect(ids(await events.list({ jobId: null, owner: null, afterId: 0, limit: 10 }))).toEqual([1, 2, 3, 4, 5]);
    expect(ids(await events.list({ jobId: 'ja', owner: null, afterId: null, limit: 3 }))).toEqual([1, 3, 5]);
    expect(read).toHaveBeenCalledTimes(2);
    await events.close();
  });

  it('lists a job’s events from the store after a restart', async () => {
    const store = memoryStore();
    const first = await EventLog.open(store, log);
    first.record(fields('ja'));
    first.record(fields('jb'));
    await first.close();

    const second = await EventLog.open(store, log);
    second.record(fields('ja'));
    expect(ids(await second.list({ jobId: 'ja', owner: null, afterId: null, limit: 100 }))).toEqual([1, 3]);
    expect(ids(await second.list({ jobId: 'ja', owner: null, afterId: 0, limit: 100 }))).toEqual([1, 3]);
    await second.close();
  });
});
