// A CPU-bound loop with a safe point every step (bench/src/migration.ts runs `relaxRow` in a
// bare Worker too, to compare).

/** One step: relax a row of 1024 cells, as a stencil code would. */
export function relaxRow(row, next) {
  for (let j = 1; j < row.length - 1; j++) next[j] = 0.25 * (row[j - 1] + 2 * row[j] + row[j + 1]);
  return next;
}

/** Returns its own running time in ms. */
export default async (ctx, { steps }) => {
  let row = new Float64Array(1024).fill(1);
  let next = new Float64Array(1024);
  const started = performance.now();
  for (let step = 0; step < steps; step++) {
    [row, next] = [relaxRow(row, next), row];
    await ctx.checkpoint({ step, row });
  }
  return { ms: performance.now() - started, check: row[512] };
};
