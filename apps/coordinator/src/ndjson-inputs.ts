import { LIMITS, WebpvmError } from '@webpvm/vm-protocol';

/** The media type of a part of a job's inputs (`POST /api/jobs/:id/inputs`): one JSON value a line. */
export const NDJSON = 'application/x-ndjson';

/**
 * The inputs of one part: one JSON value per line, blank lines ignored. All or none — a line
 * that is not JSON refuses the whole part, naming its line (from 1); more than
 * `LIMITS.inputsPerRequest` inputs too, before the rest is read.
 */
export function parseInputLines(body: string): unknown[] {
  const inputs: unknown[] = [];
  for (let start = 0, line = 1; start < body.length; line++) {
    const end = body.indexOf('\n', start);
    const text = body.slice(start, end === -1 ? body.length : end);
    start = end === -1 ? body.length : end + 1;
    if (!text.trim()) continue;
    if (inputs.length === LIMITS.inputsPerRequest) {
      throw new WebpvmError('E_TOO_LARGE', `a part holds at most ${LIMITS.inputsPerRequest} inputs; send the rest in another`);
    }
    try {
      inputs.push(JSON.parse(text));
    } catch (error) {
      throw new WebpvmError('E_BAD_REQUEST', `line ${line} is not JSON: ${(error as Error).message}; nothing was added`);
    }
  }
  return inputs;
}
