// notifyExit: the root watches the tasks it spawned (one of which throws) and counts the
// exit messages; each must come exactly once, after the task's own messages.
export default async (ctx, input) => {
  const tids = await ctx.spawn('child', input.children.map((fail, i) => ({ fail, i })));
  await ctx.notifyExit(tids, 77);
  const exits = [];
  const said = [];
  while (exits.length < tids.length) {
    const m = await ctx.recv();
    if (m.tag === 77) exits.push({ from: m.from, ...m.data, saidBefore: said.includes(m.from) });
    else said.push(m.from);
  }
  const extra = await ctx.recv({ tag: 77, timeoutMs: 500 });
  exits.sort((a, b) => a.tid.localeCompare(b.tid, 'en', { numeric: true }));
  return { tids, exits, extra };
};

export const child = async (ctx, input) => {
  ctx.send(ctx.parent, 1, `hello from ${input.i}`);
  if (input.fail) throw new Error(`child ${input.i} fails on purpose`);
  return input.i;
};
