import { PostgresServer } from '@webpvm/local-servers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotOwner } from '../src/store/job-leases.ts';
import { EVENT_ID_BLOCK } from '../src/store/postgres-schema.ts';
import { PostgresStore } from '../src/store/postgres-store.ts';
import { emptyBatch } from '../src/store/store.ts';
import { job } from './support/stored-records.ts';

/* Several coordinators on one PostgreSQL database: who runs which job (job-leases.ts, docs/cluster.md). */

let server: PostgresServer;
beforeAll(async () => {
  server = await PostgresServer.start({ durable: false });
}, 60_000);
afterAll(() => server.stop());

const LEASE_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function twoCoordinators(leaseMs = LEASE_MS) {
  const url = server.createDatabase();
  const a = await PostgresStore.open(url, { ownership: { coordinator: 'a', leaseMs } });
  const b = await PostgresStore.open(url, { ownership: { coordinator: 'b', leaseMs } });
  return { a, b, close: () => Promise.all([a.close(), b.close()]) };
}

const taskUpdate = (tid: string) => ({ tid, state: 'running' as const, attempt: 1, hostId: 'h', result: null, error: null, messagesIn: 0, messagesOut: 0, seq: null, failures: 0, losses: 0 });

describe('job leases', () => {
  it('make a job the coordinator’s that first commits it: another neither takes it nor writes to it', async () => {
    const { a, b, close } = await twoCoordinators();
    await a.commit({ ...emptyBatch(), jobs: [job('j1', 1)] });
    expect(await a.renew(LEASE_MS)).toEqual(['j1']);
    expect(await b.claim(LEASE_MS, 10)).toEqual([]);
    expect([await b.runnerOf('j1'), await b.runnerOf('nope')]).toEqual(['a', null]);
    await expect(b.commit({ ...emptyBatch(), taskUpdates: [taskUpdate('j1.0')] })).rejects.toBeInstanceOf(NotOwner);
    await expect(b.commit({ ...emptyBatch(), jobs: [{ ...job('j1', 1), attempts: 9 }] })).rejects.toBeInstanceOf(NotOwner);
    expect((await a.getJob('j1'))?.attempts).toBe(0);
    // a restarted coordinator with the same id takes its own back at once
    expect(await a.claim(LEASE_MS, 10)).toEqual(['j1']);
    await close();
  });

  it('let another take over a job whose owner stopped renewing, and refuse the old owner’s writes from then on', async () => {
    const { a, b, close } = await twoCoordinators(200);
    await a.commit({ ...emptyBatch(), jobs: [job('j1', 1)] });
    expect(await b.claim(200, 10)).toEqual([]);
    await sleep(300);
    expect(await b.runnerOf('j1')).toBeNull();
    expect(await b.claim(60_000, 10)).toEqual(['j1']);
    await expect(a.commit({ ...emptyBatch(), jobs: [{ ...job('j1', 1), attempts: 9 }] })).rejects.toBeInstanceOf(NotOwner);
    expect(await a.renew(200)).toEqual([]);
    await b.commit({ ...emptyBatch(), jobs: [{ ...job('j1', 1), attempts: 2 }] });
    expect((await a.getJob('j1'))?.attempts).toBe(2);
    await close();
  });

  it('hand a cleanly stopped coordinator’s jobs over at once, and leave finished jobs to nobody', async () => {
    const { a, b, close } = await twoCoordinators();
    await a.commit({ ...emptyBatch(), jobs: [job('j1', 1), job('j2', 2)] });
    await a.commit({ ...emptyBatch(), jobs: [{ ...job('j2', 2), state: 'done', finishedAt: 5 }] });
    expect(await a.renew(LEASE_MS)).toEqual(['j1']);
    await a.release();
    expect(await b.claim(LEASE_MS, 10)).toEqual(['j1']);
    await close();
  });

  it('give each coordinator blocks of event ids no other gets', async () => {
    const { a, b, close } = await twoCoordinators();
    const firsts = [await a.eventIdBlock(), await b.eventIdBlock(), await a.eventIdBlock()];
    expect(new Set(firsts).size).toBe(3);
    const sorted = [...firsts].sort((x, y) => x - y);
    expect(sorted.every((first, i) => i === 0 || first - sorted[i - 1]! >= EVENT_ID_BLOCK)).toBe(true);
    await close();
  });

  it('tell each coordinator the cluster’s members, and forget one not seen within the memory', async () => {
    const { a, b, close } = await twoCoordinators();
    expect(await a.members(60_000)).toEqual(['a']);
    expect(await b.members(60_000)).toEqual(['a', 'b']);
    // a coordinator stopped (b, not seen since) is still a member until it has not been seen for the whole memory
    await sleep(300);
    expect(await a.members(60_000)).toEqual(['a', 'b']);
    expect(await a.members(200)).toEqual(['a']);
    await close();
  });
});
