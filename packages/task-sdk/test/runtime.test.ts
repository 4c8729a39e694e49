import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS } from '@webpvm/vm-protocol';
import { Rng } from '../src/runtime/index.ts';
import { bundleProgram } from '../src/node/bundle-program.ts';
import { fakeWorker, program } from './fake-worker.ts';

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

  it('takes checkpoint states as JSON and refuses what JSON cannot carry', async () => {
    const worker = fakeWorker();
    const done = await worker.run({
      programUrl: program(
        'export default async (ctx) => { await ctx.checkpoint({ a: undefined, d: new Date(0), n: 1 }); try { await ctx.checkpoint({ big: 1n }); } catch (e) { return e.message; } }',
      ),
    });
    expect(worker.of('checkpoint')[0]?.checkpoint.state).toEqual({ d: '1970-01-01T00:00:00.000Z', n: 1 });
    expect(done).toMatchObject({ ok: true, value: expect.stringMatching(/^the checkpoint state is not JSON-serializable/) });
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
    expect(worker.posted.map((m) => `${m.type} ${m.tid}`)).toEqual([
      'checkpoint job1.0', 'checkpoint job1.1', 'checkpoint job1.2', 'done job1.0', 'done job1.1', 'done job1.2',
    ]);
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
