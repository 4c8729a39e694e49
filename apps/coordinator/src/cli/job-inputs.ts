import { readFile, stat } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { WebpvmError } from '@webpvm/vm-protocol';
import { cannotRead, readInputLines } from './ndjson-file.ts';

/** What a job's root tasks start from: a bag of inputs, or one `main` task that spawns the rest. */
export type TaskInputs = { inputs: unknown[] } | { main: unknown };

/** Or, for a job submitted to a coordinator, an NDJSON file whose inputs are streamed in parts. */
export type JobInputs = TaskInputs | { ndjson: string };

const PROGRAM_EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'];

/** An inputs file of this extension holds one JSON value a line (NDJSON); any other, one JSON array. */
const NDJSON_EXTENSION = '.ndjson';

/**
 * `--inputs <file>` and `--main <json>`: exactly one of them. An `.ndjson` file is left to be
 * streamed when `stream` says the caller can (a coordinator takes it in parts); else it is read whole.
 */
export async function resolveTaskInputs(options: { inputs?: string | undefined; main?: string | undefined }): Promise<TaskInputs>;
export async function resolveTaskInputs(options: { inputs?: string | undefined; main?: string | undefined }, stream: true): Promise<JobInputs>;
export async function resolveTaskInputs(options: { inputs?: string | undefined; main?: string | undefined }, stream = false): Promise<JobInputs> {
  if (options.inputs !== undefined && options.main !== undefined) {
    throw new WebpvmError('E_BAD_REQUEST', 'give either --inputs <file.json> or --main <json>, not both');
  }
  if (options.inputs !== undefined && extname(options.inputs) === NDJSON_EXTENSION) {
    await readable(options.inputs);
    return stream ? { ndjson: options.inputs } : { inputs: await readInputLines(options.inputs) };
  }
  if (options.inputs !== undefined) return { inputs: await readInputsFile(options.inputs) };
  if (options.main !== undefined) return { main: parseMainArgument(options.main) };
  throw new WebpvmError('E_BAD_REQUEST', 'give --inputs <file.json> (one task per element) or --main <json> (one root task)');
}

/** A JSON file holding an array: one root task per element. */
export async function readInputsFile(path: string): Promise<unknown[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw cannotRead(path, error);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new WebpvmError('E_BAD_REQUEST', `inputs file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(value)) {
    throw new WebpvmError(
      'E_BAD_REQUEST',
      `inputs file ${path} must hold a JSON array (one element per task), not ${describeJsonType(value)}`,
    );
  }
  if (value.length === 0) throw new WebpvmError('E_BAD_REQUEST', `inputs file ${path} holds an empty array`);
  return value;
}

export function parseMainArgument(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new WebpvmError('E_BAD_REQUEST', `--main must be JSON (quote strings: '"text"'): ${(error as Error).message}`);
  }
}

/** Checks that an inputs file can be read, before a job is made for it. */
async function readable(path: string): Promise<void> {
  const found = await stat(path).catch((error: unknown) => {
    throw cannotRead(path, error);
  });
  if (!found.isFile()) throw new WebpvmError('E_BAD_REQUEST', `cannot read inputs file ${path}: not a file`);
}

/** Checks the program file before bundling, so the person sees which path is wrong; returns it absolute. */
export async function checkProgramFile(path: string): Promise<string> {
  if (!PROGRAM_EXTENSIONS.includes(extname(path))) {
    throw new WebpvmError('E_BAD_REQUEST', `a program is a ${PROGRAM_EXTENSIONS.join(', ')} file: ${path}`);
  }
  const absolute = resolve(path);
  const found = await stat(absolute).catch(() => null);
  if (found === null) throw new WebpvmError('E_BAD_REQUEST', `program not found: ${path}`);
  if (!found.isFile()) throw new WebpvmError('E_BAD_REQUEST', `program is not a file: ${path}`);
  return absolute;
}

function describeJsonType(value: unknown): string {
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
