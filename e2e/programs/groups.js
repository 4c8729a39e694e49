// Groups across tabs: every member joins, all meet at a barrier, the root broadcasts a value,
// each member answers with its instance number and the value it got, and all meet again.
export default async (ctx, input) => {
  const count = input.members + 1;
  await ctx.spawn('member', Array.from({ length: input.members }, () => ({ count })));
  const instance = await ctx.joinGroup('crew');
  await ctx.barrier('crew', count);
  const size = await ctx.groupSize('crew');
  await ctx.bcast('crew', 1, { secret: input.secret });
  const answers = [];
  for (let i = 0; i < input.members; i++) answers.push((await ctx.recv({ tag: 2 })).data);
  await ctx.barrier('crew', count);
  answers.sort((a, b) => a.instance - b.instance);
  return { rootInstance: instance, size, answers };
};

export const member = async (ctx, input) => {
  const instance = await ctx.joinGroup('crew');
  await ctx.barrier('crew', input.count);
  const { data } = await ctx.recv({ from: ctx.parent, tag: 1 });
  ctx.send(ctx.parent, 2, { instance, secret: data.secret });
  await ctx.barrier('crew', input.count);
  return instance;
};
