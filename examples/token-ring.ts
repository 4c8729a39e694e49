import { defineTask, type ExitNotice } from '@webpvm/task-sdk';

/**
 * A token goes round a ring of tasks (PVM's spmd example): the root spawns `tasks - 1`
 * members, tells everyone the ring order, and each task adds 1 to the token as it passes,
 * `rounds` times round. The token ends at `tasks * rounds`.
 */
export interface RingInput {
  tasks: number;
  rounds: number;
}

export interface RingResult {
  tasks: number;
  rounds: number;
  token: number;
}

const RING = 1;
const TOKEN = 2;
const EXIT = 3;

export default defineTask<RingInput, RingResult>(async (ctx, { tasks, rounds }) => {
  if (!Number.isInteger(tasks) || tasks < 1) throw new Error(`tasks must be a positive integer, not ${tasks}`);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds must be a positive integer, not ${rounds}`);

  const members = await ctx.spawn('member', Array.from({ length: tasks - 1 }, () => ({ rounds })));
  await ctx.notifyExit(members, EXIT);
  const ring = [ctx.tid, ...members];
  ctx.mcast(members, RING, ring);

  // With one task the ring is the root alone: it passes the token to itself.
  const next = ring[1 % tasks]!;
  const previous = ring[tasks - 1]!;
  let token = 0;
  for (let round = 0; round < rounds; round++) {
    ctx.send(next, TOKEN, token + 1);
    token = (await ctx.recv({ from: previous, tag: TOKEN })).data as number;
    ctx.progress((round + 1) / rounds);
  }

  for (let ended = 0; ended < members.length; ended++) {
    const notice = (await ctx.recv({ tag: EXIT })).data as ExitNotice;
    if (!notice.ok) throw new Error(`ring member ${notice.tid} failed`);
  }
  return { tasks, rounds, token };
});

/** One task of the ring besides the root: takes the token from its left, adds 1, hands it to its right. */
export const member = defineTask<{ rounds: number }, number>(async (ctx, { rounds }) => {
  const ring = (await ctx.recv({ from: ctx.parent!, tag: RING })).data as string[];
  const me = ring.indexOf(ctx.tid);
  const previous = ring[me - 1]!;
  const next = ring[(me + 1) % ring.length]!;
  for (let round = 0; round < rounds; round++) {
    const token = (await ctx.recv({ from: previous, tag: TOKEN })).data as number;
    ctx.send(next, TOKEN, token + 1);
  }
  return me;
});
