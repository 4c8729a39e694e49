// Spawns one child per wave, a wave every `gapMs`, and adds up what the children send back:
// a coordinator that forgot a spawn it had answered, or carried one out twice, shows in the
// job's task count or in the sum.
export default async (ctx, input) => {
  let sum = 0;
  for (let wave = 0; wave < input.waves; wave++) {
    const [child] = await ctx.spawn('square', [{ wave }]);
    sum += (await ctx.recv({ from: child, tag: 1 })).data;
    // a pause no message ends: the waves are spread over time
    await ctx.recv({ tag: 99, timeoutMs: input.gapMs });
  }
  return { waves: input.waves, sum };
};

export const square = async (ctx, { wave }) => {
  ctx.send(ctx.parent, 1, wave * wave);
  return wave;
};
