import { afterEach, describe, expect, it, vi } from 'vitest';
import { claimSeat, seatDatabase } from '../src/host/profile-seat.ts';

/** Web Locks as other tabs of the profile hold them: `held` names are taken; a claim holds its lock. */
function fakeLocks(held: string[]) {
  const asked: string[] = [];
  const locks = {
    request: (name: string, _options: LockOptions, callback: (lock: Lock | null) => unknown) => {
      asked.push(name);
      const free = !held.includes(name);
      if (free) held.push(name);
      return Promise.resolve(callback(free ? ({ name, mode: 'exclusive' } as Lock) : null));
    },
  } as unknown as LockManager;
  return { locks, asked };
}

afterEach(() => vi.unstubAllGlobals());

describe('profile seats', () => {
  it('claims the first seat no other tab holds, by the lock names open tabs already use', async () => {
    const { locks, asked } = fakeLocks(['webpvm-host-lane-0', 'webpvm-host-lane-1']);
    expect(await claimSeat(locks)).toBe(2);
    expect(asked).toEqual(['webpvm-host-lane-0', 'webpvm-host-lane-1', 'webpvm-host-lane-2']);
    expect(await claimSeat(locks)).toBe(3);
  });

  it('uses seat 0 where Web Locks do not exist (outside secure contexts)', async () => {
    vi.stubGlobal('navigator', {});
    expect(await claimSeat()).toBe(0);
  });

  it('keeps each seat’s state in the database profiles already have', () => {
    expect([0, 1, 7].map(seatDatabase)).toEqual(['webpvm-host', 'webpvm-host-1', 'webpvm-host-7']);
  });
});
