import { defineTask } from '@webpvm/task-sdk';

/** Monte-Carlo π: throw `samples` random points in the unit square and count those inside the quarter circle. */
export interface PiInput {
  samples: number;
  /** Points between two checkpoints; default 100,000. */
  chunk?: number;
}

export interface PiState {
  /** Points thrown so far. */
  i: number;
  inside: number;
}

export interface PiResult {
  samples: number;
  inside: number;
  pi: number;
}

export default defineTask<PiInput, PiResult, PiState>(async (ctx, { samples, chunk = 100_000 }) => {
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`samples must be a positive integer, not ${samples}`);
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`chunk must be a positive integer, not ${chunk}`);

  let { i, inside } = ctx.resume ?? { i: 0, inside: 0 };
  while (i < samples) {
    const end = Math.min(samples, i + chunk);
    for (; i < end; i++) {
      const x = ctx.random();
      const y = ctx.random();
      if (x * x + y * y < 1) inside++;
    }
    await ctx.checkpoint({ i, inside });
    ctx.progress(i / samples);
  }
  return { samples, inside, pi: (4 * inside) / samples };
});
