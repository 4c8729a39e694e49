import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLocal } from '../src/node/run-local.ts';

const example = (name: string): string => fileURLToPath(new URL(`../../../examples/${name}`, import.meta.url));

describe('runLocal', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'webpvm-run-local-test-'));
    await writeFile(
      join(dir, 'flaky.ts'),
      `import { defineTask } from '@webpvm/task-sdk';
      export default defineTask(async (ctx, input: { mode: 'ok' | 'throw' | 'crash'; n: number }) => {
        ctx.log('task', ctx.tid, 'mode', input.mode);
        if (input.mode === 'throw') throw new Error('bad input ' + input.n);
        // An error outside the task's promise kills the whole worker thread.
        if (input.mode === 'crash') { setTimeout(() => { throw new Error('crashed ' + input.n); }); await new Promise(() => {}); }
        return input.n * 10;
      });`,
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('counts the primes below one million with examples/primes.ts', async () => {
    const inputs = Array.from({ length: 10 }, (_, i) => ({ from: i * 100_000, to: (i + 1) * 100_000 }));
    const progress: number[] = [];
    const { results, errors } = await runLocal(example('primes.ts'), { inputs, concurrency: 2, onProgress: (done) => progress.push(done) });
    expect(errors).toEqual(inputs.map(() => null));
    expect(results.map((r) => r as { from: number; to: number; count: number }).map(({ from, to }) => ({ from, to }))).toEqual(inputs);
    expect(results.reduce((sum: number, r) => sum + (r as { count: number }).count, 0)).toBe(78_498);
    expect(progress).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('runs a main task', async () => {
    expect(await runLocal(example('primes.ts'), { main: { from: 0, to: 1000 } })).toEqual({
      results: [{ from: 0, to: 1000, count: 168 }],
      errors: [null],
    });
  });

  it('estimates π with examples/pi.ts, the same way for the same seed', async () => {
    const inputs = Array.from({ length: 4 }, () => ({ samples: 50_000 }));
    const first = await runLocal(example('pi.ts'), { inputs, concurrency: 2, seed: 3 });
    expect(first.errors).toEqual([null, null, null, null]);
    const results = first.results as { samples: number; inside: number; pi: number }[];
    const inside = results.reduce((sum, r) => sum + r.inside, 0);
    expect(Math.abs((4 * inside) / 200_000 - Math.PI)).toBeLessThan(0.03);
    expect(new Set(results.map((r) => r.inside)).size).toBeGreaterThan(1);

    expect(await runLocal(example('pi.ts'), { inputs, concurrency: 1, seed: 3 })).toEqual(first);
    expect((await runLocal(example('pi.ts'), { inputs, concurrency: 2, seed: 4 })).results).not.toEqual(first.results);
  });

  it('gives a failed task a null result and an error, and runs the others', async () => {
    const lines: string[] = [];
    const inputs = [
      { mode: 'ok', n: 1 },
      { mode: 'throw', n: 2 },
      { mode: 'crash', n: 3 },
      { mode: 'ok', n: 4 },
      { mode: 'ok', n: 5 },
    ];
    const { results, errors } = await runLocal(join(dir, 'flaky.ts'), { inputs, concurrency: 2, onLog: (tid, line) => lines.push(`${tid}: ${line}`) });
    expect(results).toEqual([10, null, null, 40, 50]);
    expect(errors).toEqual([
      null,
      { code: 'E_TASK_FAILED', message: 'bad input 2' },
      { code: 'E_TASK_FAILED', message: 'crashed 3' },
      null,
      null,
    ]);
    expect(lines).toContain('local.0: task local.0 mode ok');
    expect(lines.some((line) => line.startsWith('local.1: Error: bad input 2 | at '))).toBe(true);
  });

  it('refuses options that are not exactly one of inputs and main', async () => {
    await expect(runLocal(example('pi.ts'), {})).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
    await expect(runLocal(example('pi.ts'), { inputs: [], main: {} })).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
  });

  it('refuses a program that does not bundle', async () => {
    await expect(runLocal(join(dir, 'missing.ts'), { inputs: [1] })).rejects.toMatchObject({ code: 'E_BAD_PROGRAM' });
  });
});
