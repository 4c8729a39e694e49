import { defineTask } from '@webpvm/task-sdk';

/** Counts the primes in [from, to) with a segmented sieve; the count is easy to check (0..1e6 → 78,498). */
export interface PrimesInput {
  from: number;
  to: number;
}

export interface PrimesState {
  /** Start of the next segment to sieve. */
  next: number;
  count: number;
}

export interface PrimesResult {
  from: number;
  to: number;
  count: number;
}

/** Numbers sieved between two checkpoints. */
const SEGMENT = 1 << 16;

export default defineTask<PrimesInput, PrimesResult, PrimesState>(async (ctx, { from, to }) => {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from) {
    throw new Error(`need whole numbers 0 <= from <= to, not from=${from} to=${to}`);
  }

  const basePrimes = primesBelow(Math.floor(Math.sqrt(to)) + 1);
  const composite = new Uint8Array(SEGMENT);
  let { next, count } = ctx.resume ?? { next: from, count: 0 };
  while (next < to) {
    const end = Math.min(to, next + SEGMENT);
    count += countPrimesInSegment(next, end, basePrimes, composite);
    next = end;
    await ctx.checkpoint({ next, count });
    ctx.progress((next - from) / (to - from));
  }
  return { from, to, count };
});

/** The primes below `limit`, by a plain sieve of Eratosthenes. */
function primesBelow(limit: number): number[] {
  const composite = new Uint8Array(limit);
  const primes: number[] = [];
  for (let n = 2; n < limit; n++) {
    if (composite[n]) continue;
    primes.push(n);
    for (let m = n * n; m < limit; m += n) composite[m] = 1;
  }
  return primes;
}

/** How many primes lie in [start, end); `basePrimes` must hold every prime up to √end. */
function countPrimesInSegment(start: number, end: number, basePrimes: number[], composite: Uint8Array): number {
  composite.fill(0, 0, end - start);
  for (const p of basePrimes) {
    if (p * p >= end) break;
    // Multiples below p² have a smaller prime factor and are crossed out by it.
    for (let m = Math.max(p * p, Math.ceil(start / p) * p); m < end; m += p) composite[m - start] = 1;
  }
  let count = 0;
  for (let n = Math.max(start, 2); n < end; n++) if (!composite[n - start]) count++;
  return count;
}
