// A task that ignores freezes: each step spins for `spinMs` without reaching a safe point (step
// `long.at` for `long.ms`), so a reclaim during a spin must terminate its worker and resume it
// from its last checkpoint.
export default async (ctx, { steps, spinMs, long }) => {
  let s = ctx.resume ?? { step: 0, acc: 1 };
  while (s.step < steps) {
    const until = Date.now() + (long && s.step === long.at ? long.ms : spinMs);
    while (Date.now() < until);
    s = { step: s.step + 1, acc: (s.acc * 31 + s.step) % 1000003 };
    ctx.progress(s.step / steps);
    await ctx.checkpoint(s);
  }
  return s;
};
