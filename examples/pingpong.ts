import { defineTask } from '@webpvm/task-sdk';

/**
 * Round-trip time and bandwidth between two tasks (PVM's `timing` example): the root spawns
 * an echo task and, for each size, sends it `roundTrips` messages of that many bytes one after
 * another, each sent back before the next goes. It measures time, so unlike other programs
 * its result differs from run to run: it is a benchmark.
 */
export interface PingpongInput {
  /** Message sizes in bytes. */
  sizes: number[];
  roundTrips: number;
}

export interface PingpongRow {
  bytes: number;
  roundTrips: number;
  medianRttMs: number;
  p99RttMs: number;
  /** Bytes carried both ways per second of round trips, in millions. */
  mbPerSecond: number;
}

// Programs are typed with the ES library only; workers in browsers and Node both have performance.now().
declare const performance: { now(): number };

const PING = 1;
const PONG = 2;
const STOP = 99;

export default defineTask<PingpongInput, PingpongRow[]>(async (ctx, { sizes, roundTrips }) => {
  if (!Array.isArray(sizes) || sizes.some((size) => !Number.isInteger(size) || size < 0)) {
    throw new Error('sizes must be a list of byte counts');
  }
  if (!Number.isInteger(roundTrips) || roundTrips < 1) throw new Error(`roundTrips must be a positive integer, not ${roundTrips}`);

  const [echo] = await ctx.spawn('echo', [null]);
  const rows: PingpongRow[] = [];
  for (const [i, bytes] of sizes.entries()) {
    const payload = new Uint8Array(bytes);
    for (let b = 0; b < bytes; b++) payload[b] = b & 0xff;
    // One untimed trip first, so a lazily opened route is not measured.
    await trip(echo!, payload);
    const rtts: number[] = [];
    for (let k = 0; k < roundTrips; k++) {
      const start = performance.now();
      await trip(echo!, payload);
      rtts.push(performance.now() - start);
    }
    rtts.sort((a, b) => a - b);
    const totalMs = rtts.reduce((sum, rtt) => sum + rtt, 0);
    rows.push({
      bytes,
      roundTrips,
      medianRttMs: rtts[Math.floor((rtts.length - 1) / 2)]!,
      p99RttMs: rtts[Math.ceil(0.99 * rtts.length) - 1]!,
      mbPerSecond: totalMs > 0 ? (2 * bytes * roundTrips) / (totalMs * 1000) : 0,
    });
    ctx.progress((i + 1) / sizes.length);
  }
  ctx.send(echo!, STOP, null);
  return rows;

  async function trip(to: string, payload: Uint8Array): Promise<void> {
    ctx.send(to, PING, payload);
    const back = (await ctx.recv({ from: to, tag: PONG })).data as Uint8Array;
    if (back.byteLength !== payload.byteLength) throw new Error(`sent ${payload.byteLength} bytes, ${back.byteLength} came back`);
  }
});

/** Sends every message from its parent straight back, until told to stop; returns how many it echoed. */
export const echo = defineTask<null, number>(async (ctx) => {
  const parent = ctx.parent!;
  for (let echoed = 0; ; echoed++) {
    const { tag, data } = await ctx.recv({ from: parent });
    if (tag === STOP) return echoed;
    ctx.send(parent, PONG, data);
  }
});
