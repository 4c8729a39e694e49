// `members` tasks and the root meet at a barrier `rounds` times; between two barriers each adds
// its instance number to a running total it passes round the ring of members. A barrier call
// counted twice, or forgotten, hangs the job or changes the totals.
export default async (ctx, input) => {
  const count = input.members + 1;
  const members = await ctx.spawn('member', Array.from({ length: input.members }, () => ({ count, rounds: input.rounds })));
  await ctx.joinGroup('crew');
  for (let round = 0; round < input.rounds; round++) {
    await ctx.barrier('crew', count);
    ctx.mcast(members, 1, round);
  }
  let total = 0;
  for (const member of members) total += (await ctx.recv({ from: member, tag: 2 })).data;
  return { rounds: input.rounds, members: input.members, total };
};

export const member = async (ctx, { count, rounds }) => {
  await ctx.joinGroup('crew');
  let total = 0;
  for (let round = 0; round < rounds; round++) {
    await ctx.barrier('crew', count);
    total += (await ctx.recv({ from: ctx.parent, tag: 1 })).data;
  }
  ctx.send(ctx.parent, 2, total);
  return total;
};
