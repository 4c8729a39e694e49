// The task the migration benchmark moves between tabs (bench/src/migration.ts).

/**
 * Holds `bytes` of state (a Float64Array) and works on it, reaching a safe point every step,
 * until the job is cancelled: the benchmark moves it between tabs meanwhile.
 */
export default async (ctx, { bytes }) => {
  const s = ctx.resume ?? { step: 0, data: new Float64Array(Math.max(1, bytes / 8)) };
  for (;;) {
    s.data[s.step % s.data.length] += 1;
    s.step++;
    await ctx.checkpoint(s);
    // Without a shared freeze flag the worker hears of a freeze only between macrotasks.
    if (s.step % 2000 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
  }
};
