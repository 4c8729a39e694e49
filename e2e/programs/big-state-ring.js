// A token ring whose every task keeps a Float64Array of `doubles` in its checkpoints: too large for
// the coordinator to keep (over 16 MiB), so another volunteer's tab keeps it. In round r the root
// sends r * tasks + 1, each member adds 1 as it passes it on, and each task adds what it received
// to element r of its array. Its result is the array's sum and weighted sum, which a task
// restarted from anything but its exact state gets wrong, or never ends.
const RING = 1;
const TOKEN = 2;
const SUMS = 3;

function sums(state) {
  let sum = 0;
  let weighted = 0;
  for (let i = 0; i < state.length; i++) {
    sum += state[i];
    weighted += state[i] * (i + 1);
  }
  return { sum, weighted };
}

export default async (ctx, { tasks, rounds, doubles, pauseMs }) => {
  let saved = ctx.resume;
  if (!saved) {
    const members = await ctx.spawn('member', Array.from({ length: tasks - 1 }, () => ({ rounds, doubles })));
    ctx.mcast(members, RING, [ctx.tid, ...members]);
    saved = { members, round: 0, state: new Float64Array(doubles) };
  }
  const { members, state } = saved;
  let { round } = saved;
  while (round < rounds) {
    ctx.send(members[0], TOKEN, round * tasks + 1);
    state[round] += (await ctx.recv({ from: members[members.length - 1], tag: TOKEN })).data;
    round++;
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
    await ctx.checkpoint({ members, round, state });
    ctx.progress(round / rounds);
  }
  const all = [sums(state)];
  for (const member of members) all.push((await ctx.recv({ from: member, tag: SUMS })).data);
  return { tasks, rounds, sums: all };
};

export const member = async (ctx, { rounds, doubles }) => {
  const saved = ctx.resume ?? { ring: (await ctx.recv({ from: ctx.parent, tag: RING })).data, round: 0, state: new Float64Array(doubles) };
  const { ring, state } = saved;
  let { round } = saved;
  const me = ring.indexOf(ctx.tid);
  while (round < rounds) {
    const token = (await ctx.recv({ from: ring[me - 1], tag: TOKEN })).data;
    state[round] += token;
    ctx.send(ring[(me + 1) % ring.length], TOKEN, token + 1);
    round++;
    await ctx.checkpoint({ ring, round, state });
  }
  ctx.send(ctx.parent, SUMS, sums(state));
  return me;
};
