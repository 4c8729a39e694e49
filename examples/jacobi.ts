import { defineTask, type TaskContext } from '@webpvm/task-sdk';

/**
 * Heat diffusion on an n×n plate by Jacobi iteration: the top edge is held at 100, the other
 * edges at 0, and each sweep sets every inner cell to the mean of its four neighbours. The
 * inner rows are cut into `strips` horizontal strips, one task each (the root computes the
 * first); after every sweep each strip swaps its edge rows (halos) with its neighbours.
 * Every cell is computed with the same operations in the same order however the plate is
 * cut, so the grid is bit for bit the same for any number of strips: `checksum` shows it.
 */
export interface JacobiInput {
  n: number;
  iterations: number;
  strips: number;
}

export interface JacobiResult {
  n: number;
  iterations: number;
  strips: number;
  /** FNV-1a (32-bit, hex) over the bytes of the final grid, a Float64Array in row order. */
  checksum: string;
  sum: number;
  center: number;
}

interface StripInput {
  n: number;
  iterations: number;
  strips: number;
  index: number;
}

const TOP = 100;
const NEIGHBOURS = 1;
const RESULT = 2;
/** Halo tags: one per sweep and direction, above the fixed tags. */
const HALO = 16;
const UP = 0;
const DOWN = 1;
const MAX_ITERATIONS = 1_000_000_000;

const haloTag = (iteration: number, direction: number): number => HALO + 2 * iteration + direction;

/** Where a strip is up to, its checkpoint: a task that moves resumes from here. */
interface StripState {
  tids: string[];
  iteration: number;
  current: Float64Array<ArrayBuffer>;
}

/** The grid rows [first, end) of strip `index`: the n - 2 inner rows shared out as evenly as can be. */
function stripRows(n: number, strips: number, index: number): [first: number, end: number] {
  const inner = n - 2;
  return [1 + Math.floor((index * inner) / strips), 1 + Math.floor(((index + 1) * inner) / strips)];
}

export default defineTask<JacobiInput, JacobiResult>(async (ctx, { n, iterations, strips }) => {
  if (!Number.isInteger(n) || n < 3) throw new Error(`n must be an integer of at least 3, not ${n}`);
  if (!Number.isInteger(iterations) || iterations < 0 || iterations > MAX_ITERATIONS) {
    throw new Error(`iterations must be an integer from 0 to ${MAX_ITERATIONS}, not ${iterations}`);
  }
  if (!Number.isInteger(strips) || strips < 1 || strips > n - 2) {
    throw new Error(`strips must be an integer from 1 to ${n - 2}, not ${strips}`);
  }

  const resume = ctx.resume as StripState | null;
  let tids = resume?.tids;
  if (!tids) {
    const workers = await ctx.spawn(
      'strip',
      Array.from({ length: strips - 1 }, (_, i): StripInput => ({ n, iterations, strips, index: i + 1 })),
    );
    tids = [ctx.tid, ...workers];
    ctx.mcast(workers, NEIGHBOURS, tids);
  }

  const grid = new Float64Array(n * n);
  grid.fill(TOP, 0, n);
  grid.set(await relax(ctx, { n, iterations, strips, index: 0 }, tids, resume), n);
  for (let index = 1; index < strips; index++) {
    const rows = (await ctx.recv({ from: tids[index]!, tag: RESULT })).data as Float64Array;
    grid.set(rows, stripRows(n, strips, index)[0] * n);
  }

  let sum = 0;
  for (const cell of grid) sum += cell;
  const middle = n >> 1;
  return { n, iterations, strips, checksum: fnv1a(new Uint8Array(grid.buffer)), sum, center: grid[middle * n + middle]! };
});

/** A strip other than the first: learns its neighbours from the root, relaxes, sends its rows back. */
export const strip = defineTask<StripInput, null>(async (ctx, input) => {
  const root = ctx.parent!;
  const resume = ctx.resume as StripState | null;
  const tids = resume?.tids ?? ((await ctx.recv({ from: root, tag: NEIGHBOURS })).data as string[]);
  ctx.send(root, RESULT, await relax(ctx, input, tids, resume));
  return null;
});

/**
 * Runs the sweeps of one strip and returns its rows. `tids[i]` is the task of strip i. Each
 * sweep ends at a checkpoint, so the strip can move between any two sweeps.
 */
async function relax(
  ctx: TaskContext<unknown>,
  { n, iterations, strips, index }: StripInput,
  tids: string[],
  resume: StripState | null,
): Promise<Float64Array> {
  const [first, end] = stripRows(n, strips, index);
  const rows = end - first;
  // The strip's rows with one halo row above and one below; the plate's own edges stay fixed.
  let current = resume?.current ?? new Float64Array((rows + 2) * n);
  let next = new Float64Array((rows + 2) * n);
  if (index === 0) {
    current.fill(TOP, 0, n);
    next.fill(TOP, 0, n);
  }
  const above = index > 0 ? tids[index - 1]! : null;
  const below = index < strips - 1 ? tids[index + 1]! : null;

  for (let iteration = resume?.iteration ?? 0; iteration < iterations; iteration++) {
    if (above) ctx.send(above, haloTag(iteration, UP), current.slice(n, 2 * n));
    if (below) ctx.send(below, haloTag(iteration, DOWN), current.slice(rows * n, (rows + 1) * n));
    if (above) current.set((await ctx.recv({ from: above, tag: haloTag(iteration, DOWN) })).data as Float64Array, 0);
    if (below) current.set((await ctx.recv({ from: below, tag: haloTag(iteration, UP) })).data as Float64Array, (rows + 1) * n);

    for (let i = 1; i <= rows; i++) {
      for (let j = 1; j < n - 1; j++) {
        const at = i * n + j;
        next[at] = 0.25 * (current[at - n]! + current[at + n]! + current[at - 1]! + current[at + 1]!);
      }
    }
    [current, next] = [next, current];
    ctx.progress((iteration + 1) / iterations);
    await ctx.checkpoint({ tids, iteration: iteration + 1, current } satisfies StripState);
  }
  return current.slice(n, (rows + 1) * n);
}

/** FNV-1a, 32-bit, as 8 hex digits. */
function fnv1a(bytes: Uint8Array): string {
  let hash = 0x811c9dc5;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, '0');
}
