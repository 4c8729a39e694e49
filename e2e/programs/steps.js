// A task that advances one step at a time, sleeping between steps, and checkpoints after each:
// it shows where a task resumed from after its tab was closed or its coordinator restarted.
export default async (ctx, input) => {
  let state = ctx.resume ?? { i: 0 };
  const resumedFrom = ctx.resume ? ctx.resume.i : null;
  while (state.i < input.steps) {
    await new Promise((resolve) => setTimeout(resolve, input.stepMs));
    state = { i: state.i + 1 };
    await ctx.checkpoint(state);
    ctx.progress(state.i / input.steps);
  }
  return { index: input.index, steps: state.i, resumedFrom, tid: ctx.tid };
};
