import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { type JobState, ResultLine, WebpvmError } from '@webpvm/vm-protocol';
import type { ApiClient } from './api-client.ts';
import { say } from './output.ts';

/** After a lost connection, the first wait before asking again; it doubles each time, up to the most. */
const RETRY_FIRST_MS = 250;
const RETRY_MOST_MS = 10_000;
/** Attempts in a row that got nothing, after which the coordinator is given up on (about three minutes). */
const RETRIES = 20;
const FINAL_STATES: readonly JobState[] = ['done', 'failed', 'cancelled'];

/** An answer that does not match the protocol: asking again would not help. */
class Unexpected {
  constructor(readonly error: WebpvmError) {}
}

export interface FollowOptions {
  /** The cursor to start after: 0 for every outcome. */
  after: number;
  /** Go on as tasks finish, until the job ends; else stop at the last outcome stored now. */
  follow: boolean;
  out: NodeJS.WritableStream;
  wait?: (ms: number) => Promise<unknown>;
}

/**
 * Writes a job's root outcomes to `out` as the coordinator sends them — NDJSON lines
 * `{cursor, index, ok, result | error}`, each as it came. A connection that drops, or a
 * coordinator that is away for a while, is asked again after the last cursor written (with
 * backoff): every outcome is written once. Answers the last cursor written.
 */
export async function followOutcomes(client: ApiClient, jobId: string, options: FollowOptions): Promise<number> {
  const wait = options.wait ?? sleep;
  let cursor = options.after;
  let failures = 0;
  for (;;) {
    try {
      const decoder = new TextDecoder();
      let pending = '';
      for await (const chunk of await client.streamOutcomes(jobId, cursor, options.follow)) {
        pending += decoder.decode(chunk, { stream: true });
        for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n')) {
          const line = pending.slice(0, end + 1);
          pending = pending.slice(end + 1);
          cursor = cursorOf(line);
          failures = 0;
          if (!options.out.write(line)) await once(options.out, 'drain');
        }
      }
      // A response that ends cleanly ends the job's outcomes — unless something on the way cut it short.
      if (!options.follow || FINAL_STATES.includes((await client.getJob(jobId)).state)) return cursor;
      throw new Error('the connection closed before the job ended');
    } catch (error) {
      if (error instanceof Unexpected) throw error.error;
      if (!retryable(error) || ++failures > RETRIES) throw lost(error);
      const ms = Math.min(RETRY_MOST_MS, RETRY_FIRST_MS * 2 ** (failures - 1));
      say(`webpvm: ${(error as Error).message}; reading on after cursor ${cursor} in ${ms} ms`);
      await wait(ms);
    }
  }
}

function cursorOf(line: string): number {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    value = undefined;
  }
  const parsed = ResultLine.safeParse(value);
  if (!parsed.success) throw new Unexpected(new WebpvmError('E_INTERNAL', `unexpected result line from the coordinator: ${line.trim().slice(0, 200)}`));
  return parsed.data.cursor;
}

/**
 * A coordinator that cannot be reached, fails, is busy or cannot use its store now (a full disk)
 * may answer later; one that refuses will not.
 */
function retryable(error: unknown): boolean {
  return !(error instanceof WebpvmError) || error.code === 'E_INTERNAL' || error.code === 'E_RATE_LIMITED' || error.code === 'E_STORE_UNAVAILABLE';
}

function lost(error: unknown): WebpvmError {
  return error instanceof WebpvmError ? error : new WebpvmError('E_INTERNAL', `lost the coordinator: ${(error as Error).message}`);
}
