import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS, WebpvmError } from '@webpvm/vm-protocol';
import { bundleProgram } from '../src/node/bundle-program.ts';

async function badProgram(promise: Promise<string>): Promise<string> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WebpvmError);
  expect((error as WebpvmError).code).toBe('E_BAD_PROGRAM');
  return (error as WebpvmError).message;
}

/** Imports a bundle the way a worker does, with nothing else loaded. */
async function importBundle(code: string): Promise<{ default: (ctx: unknown, input: unknown) => unknown }> {
  return import(/* @vite-ignore */ `data:text/javascript,${encodeURIComponent(code)}`);
}

describe('bundleProgram from text', () => {
  it('compiles TypeScript and maps @webpvm/task-sdk to an inline shim', async () => {
    const code = await bundleProgram({
      source: `import { defineTask, type TaskContext } from '@webpvm/task-sdk';
        interface In { n: number }
        export default defineTask<In, number, null>(async (ctx: TaskContext<In, null>, { n }) => n * 2);`,
    });
    expect(code).toContain('var defineTask = (fn) => fn;');
    expect(code).not.toMatch(/\bimport\b/);
    const program = await importBundle(code);
    expect(await program.default({}, { n: 21 })).toBe(42);
  });

  it('takes plain JavaScript with the js loader', async () => {
    const code = await bundleProgram({ source: 'export default async (ctx, input) => input + 1;', loader: 'js' });
    expect(await (await importBundle(code)).default({}, 1)).toBe(2);
  });

  it('refuses any other import', async () => {
    expect(await badProgram(bundleProgram({ source: "import { h } from './helper.ts';\nexport default () => h;" }))).toMatch(
      /^program\.ts:1:19: import "\.\/helper\.ts" is refused/,
    );
    expect(await badProgram(bundleProgram({ source: "import z from 'zod';\nexport default () => z;" }))).toMatch(/import "zod" is refused/);
    expect(await badProgram(bundleProgram({ source: "import fs from 'node:fs';\nexport default () => fs;" }))).toMatch(
      /"node:fs" is a Node built-in module/,
    );
  });

  it('reports a syntax error with its line', async () => {
    const message = await badProgram(bundleProgram({ source: 'export default () => {\n  let x y;\n};' }));
    expect(message).toBe('program.ts:2:9: Expected ";" but found "y"');
  });

  it('refuses a program without a default export', async () => {
    expect(await badProgram(bundleProgram({ source: 'export const task = () => 1;' }))).toBe('the program has no default export');
  });

  it('refuses a program over the size limit', async () => {
    const source = `export default () => ${JSON.stringify('x'.repeat(LIMITS.programBytes))}.length;`;
    expect(await badProgram(bundleProgram({ source }))).toMatch(/^the bundled program is \d+ bytes, over the limit of 4194304$/);
  });
});

describe('bundleProgram from a file', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'webpvm-bundle-test-'));
    await writeFile(join(dir, 'square.ts'), 'export const square = (n: number): number => n * n;\n');
    await writeFile(
      join(dir, 'main.ts'),
      "import { defineTask } from '@webpvm/task-sdk';\nimport { square } from './square.ts';\nexport default defineTask(async (_ctx, n: number) => square(n));\n",
    );
    await writeFile(join(dir, 'fs.ts'), "import { readFileSync } from 'fs';\nexport default () => readFileSync;\n");
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('bundles the program with its own files into one module', async () => {
    const code = await bundleProgram({ path: join(dir, 'main.ts') });
    expect(await (await importBundle(code)).default({}, 7)).toBe(49);
  });

  it('refuses Node built-in modules', async () => {
    expect(await badProgram(bundleProgram({ path: join(dir, 'fs.ts') }))).toMatch(/"fs" is a Node built-in module/);
  });

  it('reports a missing file', async () => {
    expect(await badProgram(bundleProgram({ path: join(dir, 'nope.ts') }))).toMatch(/Could not resolve/);
  });
});
