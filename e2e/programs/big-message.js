// One message of input.bytes (64 MiB in the test) to a task on another tab, checked byte for byte.
const fill = (bytes) => {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
  return bytes;
};
const digest = (bytes) => {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i += 4093) h = Math.imul(h ^ bytes[i], 0x01000193);
  return (h >>> 0).toString(16);
};

export default async (ctx, input) => {
  const [peer] = await ctx.spawn('peer', [null]);
  // a second of small round trips first, so that the data channel is open for the big one
  for (let i = 0; i < 20; i++) {
    ctx.send(peer, 3, i);
    await ctx.recv({ from: peer, tag: 4 });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const payload = fill(new Uint8Array(input.bytes));
  ctx.send(peer, 1, { payload, digest: digest(payload) });
  const { data } = await ctx.recv({ from: peer, tag: 2 });
  return data;
};

export const peer = async (ctx) => {
  for (let i = 0; i < 20; i++) ctx.send(ctx.parent, 4, (await ctx.recv({ tag: 3 })).data);
  const { data } = await ctx.recv({ tag: 1 });
  const expected = fill(new Uint8Array(data.payload.length));
  let same = data.payload.length === expected.length;
  for (let i = 0; same && i < expected.length; i++) same = data.payload[i] === expected[i];
  ctx.send(ctx.parent, 2, { bytes: data.payload.length, same, digestMatches: digest(data.payload) === data.digest });
  return null;
};
