import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS, MAX_HANDED, SAFE_POINT_FLAGS, decodeValue, encodeMessage, encodeValue } from '@webpvm/vm-protocol';
import { Rng } from '../src/runtime/index.ts';
import { bundleProgram } from '../src/node/bundle-program.ts';
import { fakeWorker, program, settle } from './support/fake-worker.ts';

describe('runTaskWorker', () => {
  it('runs the default export with (ctx, input) and posts its result', async () => {
    const worker = fakeWorker();
    const done = await worker.run({
      programUrl: program('export default async (ctx, input) => ({ doubled: input * 2, tid: ctx.tid, jobId: ctx.jobId, parent: ctx.parent, same: ctx.input === input })'),
      input: 21,
    });
    expect(done).toEqual({ type: 'done', tid: 'job1.0', ok: true, value: { doubled: 42, tid: 'job1.0', jobId: 'job1', parent: null, same: true } });
  });

  it('reports a throw as E_TASK_FAILED with the error message, and logs the stack', async () => {
    const worker = fakeWorker();
    const done = await worker.run({ programUrl: program('export default () => { throw new Error("boom at 3"); }') });
    expect(done).toEqual({ type: 'done', tid: 'job1.0', ok: false, error: { code: 'E_TASK_FAILED', message: 'boom at 3' } });
    expect(worker.of('log')[0]?.line).toMatch(/^Error: boom at 3 \| at /);
  });

  it('reports a program without a callable default export as E_BAD_PROGRAM', async () => {
    const worker = fakeWorker();
    const none = await worker.run({ programUrl: program('export const f = () => 1;') });
    expect(none).toMatchObject({ ok: false, error: { code: 'E_BAD_PROGRAM', message: 'the program has no callable default export' } });
    const notFunction = await worker.run({ tid: 'job1.1', programUrl: program('export default 42;') });
    expect(notFunction).toMatchObject({ ok: false, error: { code: 'E_BAD_PROGRAM' } });
  });

  it('reports a program that cannot be imported as E_BAD_PROGRAM', async () => {
    const worker = fakeWorker();
    const syntax = await worker.run({ programUrl: program('export default (') });
    expect(syntax).toMatchObject({ ok: false, error: { code: 'E_BAD_PROGRAM' } });
    expect(syntax.ok || syntax.error.message).toMatch(/^the program cannot be imported: /);
    const missing = await worker.run({ tid: 'job1.1', programUrl: pathToFileURL('/nonexistent/program.mjs').href });
    expect(missing).toMatchObject({ ok: false, error: { code: 'E_BAD_PROGRAM' } });
  });

  it('answers a message that is not a start with E_BAD_FRAME', async () => {
    const worker = fakeWorker();
    worker.send({ type: 'start', task: { tid: 'job1.7' } });
    worker.send('nonsense');
    expect(worker.posted).toMatchObject([
      { type: 'done', tid: 'job1.7', ok: false, error: { code: 'E_BAD_FRAME' } },
      { type: 'done', tid: '', ok: false, error: { code: 'E_BAD_FRAME' } },
    ]);
  });

  it('posts the first checkpoint and skips the next ones within the interval', async () => {
    const worker = fakeWorker();
    const code = 'export default async (ctx) => { for (let i = 1; i <= 5; i++) await ctx.checkpoint({ i }); return "ok"; }';
    await worker.run({ programUrl: program(code) }, 60_000);
    expect(worker.of('checkpoint').map((m) => m.checkpoint.state)).toEqual([{ i: 1 }]);

    const every = fakeWorker();
    await every.run({ programUrl: program(code) }, 0);
    expect(every.of('checkpoint').map((m) => m.checkpoint.state)).toEqual([{ i: 1 }, { i: 2 }, { i: 3 }, { i: 4 }, { i: 5 }]);
  });

  it('keeps checkpoint states value-encoded, typed arrays as bytes, and refuses what cannot travel', async () => {
    const worker = fakeWorker();
    const done = await worker.run({
      programUrl: program(
        'export default async (ctx) => { await ctx.checkpoint({ a: undefined, f: new Float64Array([1.5, -0]), n: 1 }); try { await ctx.checkpoint({ d: new Date(0) }); } catch (e) { return e.code + " " + e.message; } }',
      ),
    });
    const [taken] = worker.of('checkpoint');
    expect(decodeValue(taken!.checkpoint.state, taken!.stateBuffers)).toEqual({ a: undefined, f: new Float64Array([1.5, -0]), n: 1 });
    expect(taken!.stateBuffers).toHaveLength(1);
    expect(done).toMatchObject({ ok: true, value: expect.stringMatching(/^E_BAD_REQUEST the checkpoint state cannot be kept: .*Date/) });
  });

  it('fails a result that JSON cannot carry, and turns an undefined result into null', async () => {
    const worker = fakeWorker();
    const big = await worker.run({ programUrl: program('export default () => 1n') });
    expect(big).toMatchObject({ ok: false, error: { code: 'E_TASK_FAILED', message: expect.stringMatching(/^the result is not JSON-serializable/) } });
    const huge = await worker.run({ tid: 'job1.1', programUrl: program(`export default () => "x".repeat(${LIMITS.valueBytes + 1})`) });
    expect(huge).toMatchObject({ ok: false, error: { code: 'E_TOO_LARGE' } });
    const nothing = await worker.run({ tid: 'job1.2', programUrl: program('export default () => {}') });
    expect(nothing).toEqual({ type: 'done', tid: 'job1.2', ok: true, value: null });
  });

  it('clamps progress to [0, 1] and posts it at most every 200 ms', async () => {
    const worker = fakeWorker();
    await worker.run({ programUrl: program('export default (ctx) => { ctx.progress(7); ctx.progress(0.5); ctx.progress(0.6); }') });
    expect(worker.of('progress').map((m) => m.fraction)).toEqual([1]);
  });

  it('formats log arguments into one line, cut to the protocol limit', async () => {
    const worker = fakeWorker();
    await worker.run({
      programUrl: program(`export default (ctx) => { ctx.log("n =", 3, { a: [1] }, null, undefined, 2n, "two\\nlines"); ctx.log("y".repeat(${LIMITS.logLineChars + 10})); }`),
    });
    const [first, second] = worker.of('log').map((m) => m.line);
    expect(first).toBe('n = 3 {"a":[1]} null undefined 2n two | lines');
    expect(second).toHaveLength(LIMITS.logLineChars);
    expect(second?.endsWith('…')).toBe(true);
  });

  it('seeds ctx.random from the task seed, and resumes state and random numbers from a checkpoint', async () => {
    const code = 'export default (ctx) => ({ resume: ctx.resume, draws: [ctx.random(), ctx.random(), ctx.random()] })';
    const worker = fakeWorker();
    const fresh = await worker.run({ programUrl: program(code), seed: 99 });
    const seeded = Rng.fromSeed(99);
    expect(fresh).toMatchObject({ ok: true, value: { resume: null, draws: [seeded.random(), seeded.random(), seeded.random()] } });

    const rng: [number, number, number, number] = [1, 2, 3, 4];
    const resumed = await worker.run({ tid: 'job1.1', programUrl: program(code), seed: 99, resume: { state: { step: 5 }, rng } });
    const restored = Rng.fromState(rng);
    expect(resumed).toMatchObject({ ok: true, value: { resume: { step: 5 }, draws: [restored.random(), restored.random(), restored.random()] } });
  });

  it('runs each task it is given at once, side by side, each with its own context', async () => {
    const worker = fakeWorker();
    const url = program('export default async (ctx, input) => { await ctx.checkpoint(input); await new Promise((r) => setTimeout(r, 5)); return { input, tid: ctx.tid }; }');
    const dones = await Promise.all([0, 1, 2].map((i) => worker.run({ tid: `job1.${i}`, programUrl: url, input: i * 10 })));
    expect(dones.map((d) => d.ok && d.value)).toEqual([
      { input: 0, tid: 'job1.0' },
      { input: 10, tid: 'job1.1' },
      { input: 20, tid: 'job1.2' },
    ]);
    expect(worker.posted.map((m) => `${m.type} ${'tid' in m ? m.tid : ''}`)).toEqual([
      'checkpoint job1.0', 'checkpoint job1.1', 'checkpoint job1.2', 'done job1.0', 'done job1.1', 'done job1.2',
    ]);
  });
});

describe('tasks handed in a batch (starts)', () => {
  const assignment = (i: number, programUrl: string) => ({
    tid: `job1.${i}`, attempt: 1, jobId: 'job1', parent: null, name: null, input: i, resume: null, seed: 1, timeoutMs: null, programUrl,
  });
  const starts = (programUrl: string, ...indexes: number[]) => ({
    type: 'starts',
    tasks: indexes.map((i) => ({ type: 'start', task: assignment(i, programUrl), checkpointIntervalMs: 1_000_000 })),
  });
  const reports = (posted: readonly { type: string }[]) =>
    posted.map((m) => (m.type === 'dones' ? `dones ${(m as unknown as { items: { tid: string }[] }).items.map((d) => d.tid).join(',')}` : `${m.type} ${(m as { tid?: string }).tid}`));

  it('runs them one after another and reports their outcomes together once the run is over', async () => {
    const worker = fakeWorker();
    const url = program('export default (ctx, x) => { globalThis.order = [...(globalThis.order ?? []), ctx.tid]; return x * x; }');
    worker.send(starts(url, 0, 1, 2, 3, 4, 5));
    await expect.poll(() => reports(worker.posted).join(' | ')).toBe('dones job1.0,job1.1,job1.2,job1.3,job1.4,job1.5');
    expect(worker.posted[0]).toEqual({
      type: 'dones',
      items: [0, 1, 2, 3, 4, 5].map((i) => ({ type: 'done', tid: `job1.${i}`, ok: true, value: i * i })),
    });
    expect((globalThis as { order?: string[] }).order).toEqual(['job1.0', 'job1.1', 'job1.2', 'job1.3', 'job1.4', 'job1.5']);
  });

  it('reports outcomes before anything the next task says, and does not hold them behind a long task', async () => {
    const worker = fakeWorker();
    const url = program(
      'export default async (ctx, x) => { if (x === 1) { ctx.log("second"); await new Promise((r) => setTimeout(r, 200)); } return x; }',
    );
    worker.send(starts(url, 0, 1));
    await expect.poll(() => reports(worker.posted)).toEqual(['dones job1.0', 'log job1.1']);
    await expect.poll(() => reports(worker.posted)).toEqual(['dones job1.0', 'log job1.1', 'dones job1.1']);
  });

  it('reports the outcomes of a run still going after a short wait, not at its end', async () => {
    const worker = fakeWorker();
    const url = program('export default async (ctx, x) => { if (x === 1) await new Promise((r) => setTimeout(r, 1500)); return x; }');
    worker.send(starts(url, 0, 1));
    await expect.poll(() => reports(worker.posted), { timeout: 1000 }).toEqual(['dones job1.0']);
    await expect.poll(() => reports(worker.posted), { timeout: 3000 }).toEqual(['dones job1.0', 'dones job1.1']);
  });

  it('withdraws the tasks not started yet, and says which', async () => {
    const worker = fakeWorker();
    const url = program('export default async (ctx, x) => { await new Promise((r) => setTimeout(r, 20)); return x; }');
    worker.send(starts(url, 0, 1, 2));
    await settle();
    worker.send({ type: 'withdraw', tids: ['job1.0', 'job1.2'] });
    expect(reports(worker.posted)).toEqual(['withdrawn undefined']);
    expect(worker.posted[0]).toEqual({ type: 'withdrawn', tids: ['job1.2'] });
    // the run is over once job1.1 is: both outcomes go together
    await expect.poll(() => reports(worker.posted)).toEqual(['withdrawn undefined', 'dones job1.0,job1.1']);
  });
});

describe('replay from a checkpoint', () => {
  let dir: string;
  let piUrl: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'webpvm-runtime-test-'));
    const file = join(dir, 'pi.mjs');
    await writeFile(file, await bundleProgram({ path: new URL('../../../examples/pi.ts', import.meta.url).pathname }));
    piUrl = pathToFileURL(file).href;
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('gives the same result when a task restarts from any of its checkpoints', async () => {
    const input = { samples: 50_000, chunk: 10_000 };
    const whole = fakeWorker();
    const expected = await whole.run({ programUrl: piUrl, input, seed: 5 });
    expect(expected.ok).toBe(true);
    const checkpoints = whole.of('checkpoint');
    expect(checkpoints).toHaveLength(5);

    for (const [n, { checkpoint }] of checkpoints.entries()) {
      const restarted = fakeWorker();
      const done = await restarted.run({ tid: `job1.${n}`, programUrl: piUrl, input, seed: 5, attempt: 2, resume: checkpoint });
      expect(done).toEqual({ ...expected, tid: `job1.${n}` });
    }
  });
});

describe('freeze and resume', () => {
  const LOOP = program(
    'export default async (ctx) => { let s = ctx.resume ?? { i: 0, got: [] }; while (s.i < 1e9) { s = { ...s, i: s.i + 1 }; await ctx.checkpoint(s); if (s.i % 50 === 0) await new Promise((r) => setTimeout(r, 0)); } }',
  );

  it('stops at the next checkpoint after a freeze message and reports it frozen, with counters and unread deliveries, as its last message', async () => {
    const worker = fakeWorker();
    void worker.run({ programUrl: LOOP }, 60_000);
    await settle();
    worker.deliver('job1.0', { from: 'job1.5', tag: 1, seq: 1, data: 'a' }, { from: 'job1.5', tag: 1, seq: 2, data: 'b' });
    worker.send({ type: 'freeze', tid: 'job1.0' });
    await expect.poll(() => worker.of('checkpoint').filter((c) => c.frozen)).toHaveLength(1);
    const frozen = worker.of('checkpoint').find((c) => c.frozen)!;
    expect(frozen).toMatchObject({ received: 2, unread: [1, 2], checkpoint: { sent: [], requests: 0 } });
    // the frozen state goes as the worker's last message, after which it may end
    expect(worker.last).toEqual([frozen]);
    const before = (frozen.checkpoint.state as { i: number }).i;
    await new Promise((r) => setTimeout(r, 20));
    expect(worker.of('checkpoint').filter((c) => c.frozen)).toHaveLength(1);
    expect(worker.of('done')).toHaveLength(0);
    expect(before).toBeGreaterThan(0);
  });

  it('reads persist and freeze from its cell of the shared flags, with no message and no clock', async () => {
    const flags = new SharedArrayBuffer(4 * MAX_HANDED);
    const worker = fakeWorker(undefined, { flags });
    const bits = new Int32Array(flags);
    const full = { tid: 'job1.0', attempt: 1, jobId: 'job1', parent: null, name: null, input: null, resume: null, seed: 1, timeoutMs: null, programUrl: LOOP };
    // an interval of 0 would keep every state if the clock were read: only raised bits count
    worker.send({ type: 'start', task: full, checkpointIntervalMs: 0, flag: 3 });
    await settle();
    await new Promise((r) => setTimeout(r, 20));
    expect(worker.of('checkpoint')).toHaveLength(0);
    // another task's cell is not this task's
    Atomics.or(bits, 2, SAFE_POINT_FLAGS.freeze);
    Atomics.or(bits, 3, SAFE_POINT_FLAGS.persist);
    await expect.poll(() => worker.of('checkpoint')).toHaveLength(1);
    expect(worker.of('checkpoint')[0]!.frozen).toBe(false);
    expect(Atomics.load(bits, 3)).toBe(0);
    Atomics.or(bits, 3, SAFE_POINT_FLAGS.freeze);
    await expect.poll(() => worker.of('checkpoint').filter((c) => c.frozen)).toHaveLength(1);
  });

  it('ends a resumed task whose mailbox holds an envelope that does not decode with E_BAD_FRAME, without running it', async () => {
    const worker = fakeWorker();
    const full = {
      tid: 'job1.0', attempt: 2, jobId: 'job1', parent: null, name: null, input: null, seed: 1, timeoutMs: null, resume: null,
      programUrl: program('export default (ctx) => { ctx.send("job1.1", 1, "ran"); }'),
    };
    const good = encodeMessage({ from: 'job1.2', to: 'job1.0', tag: 1, seq: 1, data: 'first' });
    worker.send({ type: 'start', task: full, checkpointIntervalMs: 0, mailbox: [good, good.subarray(0, good.byteLength - 1)] });
    await expect.poll(() => worker.of('done')).toHaveLength(1);
    expect(worker.of('done')[0]).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME' } });
    await settle();
    expect(worker.of('send')).toEqual([]);
  });

  it('resumes with its state bytes, its mailbox first, and seqs and request ids going on from the checkpoint', async () => {
    const state = encodeValue({ v: new Uint8Array([7, 8]) });
    const worker = fakeWorker((op) => ({ ok: true, value: op.kind === 'size' ? 3 : null }));
    const full = {
      tid: 'job1.0', attempt: 2, jobId: 'job1', parent: null, name: null, input: null, seed: 1, timeoutMs: null,
      resume: { state: state.json, rng: [1, 2, 3, 4] as [number, number, number, number], sent: [{ to: 'job1.1', seq: 4 }], requests: 6 },
      programUrl: program(
        'export default async (ctx) => { const m = await ctx.recv(); ctx.send("job1.1", 1, 0); await ctx.groupSize("g"); return { v: [...ctx.resume.v], m: m.data }; }',
      ),
    };
    worker.send({ type: 'start', task: full, checkpointIntervalMs: 0, stateBuffers: state.buffers, mailbox: [encodeMessage({ from: 'job1.2', to: 'job1.0', tag: 1, seq: 9, data: 'first' })] });
    await expect.poll(() => worker.of('done')).toHaveLength(1);
    expect(worker.of('done')[0]).toMatchObject({ ok: true, value: { v: [7, 8], m: 'first' } });
    expect(worker.sent()[0]?.seq).toBe(5);
    expect(worker.of('request')[0]?.requestId).toBe(7);
  });
});
