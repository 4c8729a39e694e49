import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { LIMITS, WebpvmError } from '@webpvm/vm-protocol';

/** A part of a job's inputs as one request carries it (`POST /api/jobs/:id/inputs`). */
export interface InputPart {
  /** NDJSON: the file's lines as they are, blank ones left out. */
  text: string;
  inputs: number;
  /** How far into the file this part reaches, in bytes (about: for progress). */
  fileBytes: number;
}

/** An inputs file that cannot be read, said as the person gave its path. */
export function cannotRead(path: string, error: unknown): WebpvmError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new WebpvmError('E_BAD_REQUEST', `inputs file not found: ${path}`);
  return new WebpvmError('E_BAD_REQUEST', `cannot read inputs file ${path}: ${(error as Error).message}`);
}

/** A part holds at most this many inputs or bytes: small enough to be stored in a blink, large enough to be few. */
export const PART_INPUTS = 10_000;
export const PART_BYTES = 8 * 1024 * 1024;

/**
 * The input lines of an NDJSON file with their line numbers, each checked to be JSON (a bad
 * line is named `path:line`, before it is sent); blank lines are skipped. Read as it goes.
 */
async function* inputLines(path: string): AsyncGenerator<{ text: string; bytes: number; read: number }> {
  const stream = createReadStream(path, 'utf8');
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  let read = 0;
  try {
    for await (const text of lines) {
      line++;
      const bytes = Buffer.byteLength(text) + 1;
      read += bytes;
      if (!text.trim()) continue;
      if (bytes > LIMITS.requestBytes) throw new WebpvmError('E_TOO_LARGE', `${path}:${line} is longer than a request may be (${LIMITS.requestBytes} bytes)`);
      try {
        JSON.parse(text);
      } catch (error) {
        throw new WebpvmError('E_BAD_REQUEST', `${path}:${line} is not JSON: ${(error as Error).message}`);
      }
      yield { text, bytes, read };
    }
  } catch (error) {
    throw error instanceof WebpvmError ? error : cannotRead(path, error);
  } finally {
    lines.close();
    stream.destroy();
  }
}

/** The inputs of an NDJSON file in parts of at most `PART_INPUTS` inputs and about `PART_BYTES` bytes. */
export async function* inputParts(path: string, maxInputs = PART_INPUTS, maxBytes = PART_BYTES): AsyncGenerator<InputPart> {
  let lines: string[] = [];
  let bytes = 0;
  let fileBytes = 0;
  for await (const line of inputLines(path)) {
    if (lines.length && (lines.length === maxInputs || bytes + line.bytes > maxBytes)) {
      yield { text: `${lines.join('\n')}\n`, inputs: lines.length, fileBytes };
      lines = [];
      bytes = 0;
    }
    lines.push(line.text);
    bytes += line.bytes;
    fileBytes = line.read;
  }
  if (lines.length) yield { text: `${lines.join('\n')}\n`, inputs: lines.length, fileBytes };
}

/** Every input of an NDJSON file, read whole (for `run-local`, which runs them in this process anyway). */
export async function readInputLines(path: string): Promise<unknown[]> {
  const inputs: unknown[] = [];
  for await (const part of inputParts(path)) for (const text of part.text.split('\n')) if (text) inputs.push(JSON.parse(text));
  if (!inputs.length) throw new WebpvmError('E_BAD_REQUEST', `inputs file ${path} holds no inputs`);
  return inputs;
}
