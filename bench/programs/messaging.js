// Task-to-task messaging measured from inside webpvm: the root pings a peer task it spawns
// (on the other tab), then streams messages of each size to it
// (a warm-up stream first). Times come from performance.now():
// this program is a benchmark, so its result is not meant to be deterministic.
const PING = 1, PONG = 2, STREAM = 3, STREAM_DONE = 4, STREAM_START = 5, STOP = 9;

export default async (ctx, input) => {
  const [peer] = await ctx.spawn('peer', [null]);
  const ping = async () => {
    const t0 = performance.now();
    ctx.send(peer, PING, 0);
    await ctx.recv({ from: peer, tag: PONG });
    return performance.now() - t0;
  };
  // warm up until routes are known and any data channel is open
  const warmUntil = performance.now() + input.warmupMs;
  while (performance.now() < warmUntil) await ping();
  const rtts = [];
  for (let i = 0; i < input.pings; i++) rtts.push(await ping());

  const stream = async (size, count) => {
    const payload = new Uint8Array(size);
    ctx.send(peer, STREAM_START, count);
    const t0 = performance.now();
    for (let i = 0; i < count; i++) ctx.send(peer, STREAM, payload);
    await ctx.recv({ from: peer, tag: STREAM_DONE });
    return (performance.now() - t0) / 1000;
  };
  if (input.warmupBytes > 0) await stream(64 * 1024, Math.ceil(input.warmupBytes / (64 * 1024)));
  const streams = [];
  for (const size of input.sizes) {
    const count = Math.max(4, Math.round(input.streamBytes / size));
    streams.push({ size, count, seconds: await stream(size, count) });
  }
  ctx.send(peer, STOP, null);
  return { rtts, streams };
};

export const peer = async (ctx) => {
  for (;;) {
    const m = await ctx.recv();
    if (m.tag === PING) ctx.send(ctx.parent, PONG, m.data);
    else if (m.tag === STREAM_START) {
      for (let i = 0; i < m.data; i++) await ctx.recv({ from: ctx.parent, tag: STREAM });
      ctx.send(ctx.parent, STREAM_DONE, null);
    } else if (m.tag === STOP) return null;
  }
};
