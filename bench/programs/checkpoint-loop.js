// A CPU-bound loop with a safe point every step (bench/src/migration.ts runs `sweep` in a bare
// Worker too, to compare). One step is one Jacobi sweep over a 16 × 1024 strip.

/** One sweep: every inner cell becomes the mean of its four neighbours. */
export function sweep(grid, next, rows, cols) {
  for (let i = 1; i < rows - 1; i++) {
    for (let j = 1; j < cols - 1; j++) {
      const at = i * cols + j;
      next[at] = 0.25 * (grid[at - cols] + grid[at + cols] + grid[at - 1] + grid[at + 1]);
    }
  }
  return next;
}

/** Returns its own running time in ms. */
export default async (ctx, { steps }) => {
  const rows = 16;
  const cols = 1024;
  let grid = new Float64Array(rows * cols).fill(1);
  let next = new Float64Array(rows * cols);
  grid.fill(100, 0, cols);
  next.fill(100, 0, cols);
  const started = performance.now();
  for (let step = 0; step < steps; step++) {
    [grid, next] = [sweep(grid, next, rows, cols), grid];
    await ctx.checkpoint({ step, grid });
  }
  return { ms: performance.now() - started, check: grid[8 * cols + 512] };
};
