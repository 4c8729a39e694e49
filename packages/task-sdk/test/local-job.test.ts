import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLocal } from '../src/node/run-local.ts';

const example = (name: string): string => fileURLToPath(new URL(`../../../examples/${name}`, import.meta.url));

/** Programs that exercise one part of the local virtual machine each. */
const PROGRAMS = {
  'groups.ts': `import { defineTask } from '@webpvm/task-sdk';
    export default defineTask(async (ctx) => {
      const members = await ctx.spawn('member', [0, 1, 2, 3]);
      await ctx.notifyExit(members, 9);
      const reports = [];
      for (let i = 0; i < 4; i++) reports.push((await ctx.recv({ tag: 1 })).data);
      for (let i = 0; i < 4; i++) await ctx.recv({ tag: 9 });
      return { members, reports: reports.sort((a, b) => a.instance - b.instance), sizeAfter: await ctx.groupSize('g'), rejoined: await ctx.joinGroup('g') };
    });
    export const member = defineTask(async (ctx) => {
      const instance = await ctx.joinGroup('g');
      await ctx.barrier('g', 4);
      const size = await ctx.groupSize('g');
      await ctx.barrier('g', 4);
      if (instance === 0) await ctx.bcast('g', 5, 'from ' + ctx.tid);
      const got = instance === 0 ? await ctx.recv({ tag: 5, timeoutMs: 50 }) : (await ctx.recv({ tag: 5 })).data;
      ctx.send(ctx.parent, 1, { tid: ctx.tid, instance, size, got });
    });`,
  'notify.ts': `import { defineTask } from '@webpvm/task-sdk';
    export default defineTask(async (ctx) => {
      const kids = [...(await ctx.spawn('kid', ['ok', 'throw', 'ok'])), ...(await ctx.spawn('missing', [null]))];
      await ctx.notifyExit(kids, 7);
      const seen = [];
      for (let i = 0; i < 6; i++) {
        const { from, tag, data } = await ctx.recv();
        seen.push({ from, tag, data });
      }
      await ctx.notifyExit([kids[0]], 8);
      return { kids, seen, again: await ctx.recv({ tag: 8, timeoutMs: 5000 }) };
    });
    export const kid = defineTask(async (ctx, mode) => {
      if (mode === 'throw') throw new Error('kid failed');
      ctx.send(ctx.parent, 1, 'bye');
      return mode;
    });`,
  'refusals.ts': `import { defineTask } from '@webpvm/task-sdk';
    const code = (fn) => { try { fn(); return 'sent'; } catch (error) { return error.code; } };
    export default defineTask(async (ctx) => {
      await ctx.spawn('stuck', [null]);
      return {
        otherJob: code(() => ctx.send('other.1', 1, 'x')),
        otherJobNotify: await ctx.notifyExit(['other.1'], 1).then(() => 'ok', (error) => error.code),
        unknownTask: await ctx.notifyExit(['local.99'], 2).then(() => ctx.recv({ tag: 2, timeoutMs: 5000 })),
      };
    });
    export const stuck = defineTask(() => new Promise(() => {}));`,
};

describe('runLocal with message passing', () => {
  let dir: string;
  const program = (name: keyof typeof PROGRAMS): string => join(dir, name);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'webpvm-local-job-test-'));
    await Promise.all(Object.entries(PROGRAMS).map(([name, code]) => writeFile(join(dir, name), code)));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('passes a token round a ring of 30 tasks with examples/token-ring.ts', async () => {
    expect(await runLocal(example('token-ring.ts'), { main: { tasks: 30, rounds: 3 } })).toEqual({
      results: [{ tasks: 30, rounds: 3, token: 90 }],
      errors: [null],
    });
  });

  it('gives the same grid bit for bit however examples/jacobi.ts cuts it into strips', async () => {
    const run = async (input: { n: number; iterations: number; strips: number }) => {
      const { results, errors } = await runLocal(example('jacobi.ts'), { main: input });
      expect(errors).toEqual([null]);
      const { checksum, sum, center } = results[0] as { checksum: string; sum: number; center: number };
      return { checksum, sum, center };
    };
    const [whole, three, uneven, unevenWhole] = await Promise.all([
      run({ n: 96, iterations: 200, strips: 1 }),
      run({ n: 96, iterations: 200, strips: 3 }),
      run({ n: 23, iterations: 60, strips: 4 }),
      run({ n: 23, iterations: 60, strips: 1 }),
    ]);
    expect(three).toEqual(whole);
    expect(uneven).toEqual(unevenWhole);
    expect(whole.sum).toBeGreaterThan(0);
    expect(whole.checksum).toMatch(/^[0-9a-f]{8}$/);
  });

  it('times round trips with examples/pingpong.ts', async () => {
    const { results, errors } = await runLocal(example('pingpong.ts'), { main: { sizes: [0, 1000, 100_000], roundTrips: 5 } });
    expect(errors).toEqual([null]);
    const rows = results[0] as { bytes: number; roundTrips: number; medianRttMs: number; p99RttMs: number; mbPerSecond: number }[];
    expect(rows.map((row) => [row.bytes, row.roundTrips])).toEqual([
      [0, 5],
      [1000, 5],
      [100_000, 5],
    ]);
    for (const row of rows) expect(row.p99RttMs).toBeGreaterThanOrEqual(row.medianRttMs);
  });

  it('numbers group members from 0, holds barriers and broadcasts to all but the sender', async () => {
    const { results, errors } = await runLocal(program('groups.ts'), { main: null });
    expect(errors).toEqual([null]);
    const { members, reports, sizeAfter, rejoined } = results[0] as {
      members: string[];
      reports: { tid: string; instance: number; size: number; got: unknown }[];
      sizeAfter: number;
      rejoined: number;
    };
    expect(members).toEqual(['local.1', 'local.2', 'local.3', 'local.4']);
    expect(reports.map((r) => [r.instance, r.size])).toEqual([
      [0, 4],
      [1, 4],
      [2, 4],
      [3, 4],
    ]);
    const sender = reports[0]!.tid;
    expect(reports.map((r) => r.got)).toEqual([null, `from ${sender}`, `from ${sender}`, `from ${sender}`]);
    // Tasks that end leave their groups.
    expect(sizeAfter).toBe(0);
    expect(rejoined).toBe(0);
  });

  it('tells a task when each task it watches ends, after that task’s last message to it', async () => {
    const lines: string[] = [];
    const { results, errors } = await runLocal(program('notify.ts'), { main: null, onLog: (tid, line) => lines.push(`${tid}: ${line}`) });
    expect(errors).toEqual([null]);
    const { kids, seen, again } = results[0] as { kids: string[]; seen: { from: string; tag: number; data: unknown }[]; again: unknown };
    expect(kids).toEqual(['local.1', 'local.2', 'local.3', 'local.4']);
    const notices = seen.filter((m) => m.tag === 7);
    expect(notices.map((m) => m.data).sort((a, b) => ((a as { tid: string }).tid < (b as { tid: string }).tid ? -1 : 1))).toEqual([
      { tid: 'local.1', ok: true },
      { tid: 'local.2', ok: false },
      { tid: 'local.3', ok: true },
      { tid: 'local.4', ok: false },
    ]);
    for (const m of notices) expect(m.from).toBe((m.data as { tid: string }).tid);
    for (const kid of ['local.1', 'local.3']) {
      const bye = seen.findIndex((m) => m.from === kid && m.tag === 1);
      const notice = seen.findIndex((m) => m.from === kid && m.tag === 7);
      expect(bye).toBeGreaterThanOrEqual(0);
      expect(bye).toBeLessThan(notice);
    }
    expect(again).toEqual({ from: 'local.1', tag: 8, data: { tid: 'local.1', ok: true } });
    expect(lines).toContain('local.2: task failed: kid failed (E_TASK_FAILED)');
    expect(lines).toContain('local.4: task failed: the program has no callable export named "missing" (E_BAD_PROGRAM)');
  });

  it('refuses another job’s tid, reports a task that never was as ended, and ends when the root ends though a spawned task still waits', async () => {
    expect(await runLocal(program('refusals.ts'), { main: null })).toEqual({
      results: [
        {
          otherJob: 'E_FORBIDDEN',
          otherJobNotify: 'E_FORBIDDEN',
          // As on the grid (and in PVM): watching a tid that never ran gets its notice at once, not ok.
          unknownTask: { from: 'local.99', tag: 2, data: { tid: 'local.99', ok: false } },
        },
      ],
      errors: [null],
    });
  });
});
