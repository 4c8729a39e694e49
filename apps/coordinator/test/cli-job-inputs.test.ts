import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebpvmError } from '@webpvm/vm-protocol';
import { checkProgramFile, parseMainArgument, readInputsFile, resolveTaskInputs } from '../src/cli/job-inputs.ts';
import { inputParts } from '../src/cli/ndjson-file.ts';

let dir: string;

async function badRequest(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WebpvmError);
  expect((error as WebpvmError).code).toBe('E_BAD_REQUEST');
  return (error as WebpvmError).message;
}

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webpvm-cli-'));
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('readInputsFile', () => {
  it('reads a JSON array, one element per task', async () => {
    expect(await readInputsFile(await file('ok.json', '[1, {"n": 2}, null, "x"]'))).toEqual([1, { n: 2 }, null, 'x']);
  });

  it('names the path of a missing file', async () => {
    const path = join(dir, 'missing.json');
    expect(await badRequest(readInputsFile(path))).toBe(`inputs file not found: ${path}`);
  });

  it('names the path of a file that is not JSON', async () => {
    const path = await file('broken.json', '[1, 2');
    expect(await badRequest(readInputsFile(path))).toMatch(new RegExp(`^inputs file ${path} is not valid JSON: `));
  });

  it.each([
    ['{"a": 1}', 'an object'],
    ['42', 'a number'],
    ['"text"', 'a string'],
    ['null', 'null'],
  ])('refuses %s, which is not an array', async (text, found) => {
    const path = await file('not-array.json', text);
    expect(await badRequest(readInputsFile(path))).toBe(
      `inputs file ${path} must hold a JSON array (one element per task), not ${found}`,
    );
  });

  it('refuses an empty array: a job needs at least one task', async () => {
    const path = await file('empty.json', '[]');
    expect(await badRequest(readInputsFile(path))).toBe(`inputs file ${path} holds an empty array`);
  });

  it('reports a directory given as the file', async () => {
    const path = join(dir, 'a-directory');
    await mkdir(path);
    expect(await badRequest(readInputsFile(path))).toMatch(new RegExp(`^cannot read inputs file ${path}: `));
  });
});

describe('resolveTaskInputs', () => {
  it('takes --inputs as a bag of tasks', async () => {
    expect(await resolveTaskInputs({ inputs: await file('bag.json', '[1,2]') })).toEqual({ inputs: [1, 2] });
  });

  it('takes --main as the input of one root task, null included', async () => {
    expect(await resolveTaskInputs({ main: '{"n": 3}' })).toEqual({ main: { n: 3 } });
    expect(await resolveTaskInputs({ main: 'null' })).toEqual({ main: null });
  });

  it('wants exactly one of --inputs and --main', async () => {
    expect(await badRequest(resolveTaskInputs({}))).toMatch(/give --inputs <file.json> .* or --main <json>/);
    expect(await badRequest(resolveTaskInputs({ inputs: 'x.json', main: '1' }))).toMatch(/not both/);
  });
});

describe('NDJSON inputs files', () => {
  const parts = async (path: string, inputs?: number, bytes?: number) => {
    const out = [];
    for await (const part of inputParts(path, inputs, bytes)) out.push(part);
    return out;
  };

  it('are left to be streamed to a coordinator, and read whole for run-local', async () => {
    const path = await file('bag.ndjson', '1\n\n{"n": 2}\r\n"x"\n');
    expect(await resolveTaskInputs({ inputs: path }, true)).toEqual({ ndjson: path });
    expect(await resolveTaskInputs({ inputs: path })).toEqual({ inputs: [1, { n: 2 }, 'x'] });
  });

  it('go in parts of at most so many inputs or so many bytes, blank lines left out', async () => {
    const path = await file('many.ndjson', `${Array.from({ length: 7 }, (_, i) => `{"i":${i}}`).join('\n\n')}\n`);
    expect((await parts(path, 3)).map((p) => [p.inputs, p.text])).toEqual([
      [3, '{"i":0}\n{"i":1}\n{"i":2}\n'],
      [3, '{"i":3}\n{"i":4}\n{"i":5}\n'],
      [1, '{"i":6}\n'],
    ]);
    // eight bytes a line: two lines fit in 16, a third does not
    expect((await parts(path, 100, 16)).map((p) => p.inputs)).toEqual([2, 2, 2, 1]);
    expect((await parts(path, 3)).at(-1)?.fileBytes).toBe((await parts(path, 100)).at(-1)?.fileBytes);
  });

  it('name the line that is not JSON, and a file that is missing or holds no input', async () => {
    const broken = await file('broken.ndjson', '1\n2\n{oops\n');
    expect(await badRequest(parts(broken))).toMatch(new RegExp(`^${broken}:3 is not JSON: `));
    const missing = join(dir, 'missing.ndjson');
    expect(await badRequest(resolveTaskInputs({ inputs: missing }, true))).toBe(`inputs file not found: ${missing}`);
    const empty = await file('empty.ndjson', '\n  \n');
    expect(await badRequest(resolveTaskInputs({ inputs: empty }))).toBe(`inputs file ${empty} holds no inputs`);
  });
});

describe('parseMainArgument', () => {
  it('refuses text that is not JSON, with a hint about quoting', () => {
    expect(() => parseMainArgument('hello')).toThrow(/^--main must be JSON \(quote strings/);
  });
});

describe('checkProgramFile', () => {
  it('answers the absolute path of an existing program', async () => {
    const path = await file('task.ts', 'export default () => 1;');
    expect(await checkProgramFile(path)).toBe(path);
  });

  it('refuses a file that is not a program by its extension', async () => {
    expect(await badRequest(checkProgramFile(join(dir, 'data.json')))).toMatch(/^a program is a \.ts, \.mts, \.js, \.mjs file: /);
  });

  it('names a missing program', async () => {
    const path = join(dir, 'nope.mjs');
    expect(await badRequest(checkProgramFile(path))).toBe(`program not found: ${path}`);
  });
});
