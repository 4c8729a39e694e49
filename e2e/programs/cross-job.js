// A task that tries to address a task of another job: the send must throw and deliver nothing.
export default async (ctx, input) => {
  if (input.role === 'victim') {
    const got = await ctx.recv({ timeoutMs: input.waitMs });
    return { received: got };
  }
  try {
    ctx.send(input.target, 1, 'intrusion');
    return { sent: true };
  } catch (error) {
    return { sent: false, code: error.code, message: error.message };
  }
};
