import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { JobOwnership } from '../src/job-ownership.ts';
import type { JobLeases } from '../src/store/job-leases.ts';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

const LEASE_MS = 3_000;

/** Leases as the database would hold them for this coordinator: what it renews, what it may take, who else is a member. */
function fakeLeases() {
  const state = { mine: new Set<string>(), claimable: [] as string[], members: ['http://a.example'], released: false };
  const leases: JobLeases = {
    coordinator: 'http://a.example',
    renew: async () => [...state.mine],
    claim: async () => {
      const taken = state.claimable.splice(0);
      for (const jobId of taken) state.mine.add(jobId);
      return [...state.mine];
    },
    release: async () => {
      state.released = true;
      state.mine.clear();
    },
    runnerOf: async () => null,
    members: async () => [...state.members],
    eventIdBlock: async () => 1,
  };
  return { state, leases };
}

function ownership(leases: JobLeases) {
  const told = { adopted: [] as string[][], lost: [] as string[][], members: [] as string[][] };
  const running = new Set<string>();
  const owner = new JobOwnership({
    leases,
    log: pino({ level: 'silent' }),
    leaseMs: LEASE_MS,
    adopt: async (jobIds) => {
      told.adopted.push(jobIds);
      for (const jobId of jobIds) running.add(jobId);
    },
    running: (jobId) => running.has(jobId),
    lost: (jobIds) => told.lost.push(jobIds),
    members: (coordinators) => told.members.push(coordinators),
  });
  return { owner, told, running };
}

/** A coordinator running `jobId`, taken at its start, its turns under way. */
async function running(jobId: string) {
  const { state, leases } = fakeLeases();
  const held = ownership(leases);
  state.claimable.push(jobId);
  await held.owner.claimAtStart();
  held.running.add(jobId);
  held.owner.run();
  return { state, ...held };
}

describe('JobOwnership', () => {
  it('takes orphaned jobs each turn, and tells the members as the database has them', async () => {
    const { state, leases } = fakeLeases();
    const { owner, told } = ownership(leases);
    state.claimable.push('j1');
    expect(await owner.claimAtStart()).toEqual(['j1']);
    expect(told.members).toEqual([['http://a.example']]);
    owner.run();
    state.claimable.push('j2');
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3);
    expect(told.adopted).toEqual([['j2']]);
    expect(told.members.at(-1)).toEqual(['http://a.example']);
    state.members.push('http://b.example');
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3);
    expect(told.members.at(-1)).toEqual(['http://a.example', 'http://b.example']);
    await owner.stop();
  });

  it('gives up a running job another coordinator took', async () => {
    const { state, owner, told } = await running('j1');
    state.mine.delete('j1');
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3);
    expect(told.lost).toEqual([['j1']]);
    await owner.stop();
  });

  it('once stopping, takes no more jobs and does not give up one it loses; a stop lets every job go', async () => {
    const { state, owner, told } = await running('j1');
    owner.stopping();
    state.mine.delete('j1');
    state.claimable.push('j2');
    await vi.advanceTimersByTimeAsync(LEASE_MS);
    expect(told.lost).toEqual([]);
    expect(told.adopted).toEqual([]);
    await owner.stop();
    expect(state.released).toBe(true);
  });
});
