import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { build } from 'esbuild';
import { WebpvmError, makeTid, type ErrorBody, type FromWorker, type TaskAssignment, type ToWorker } from '@webpvm/vm-protocol';
import { taskSeed } from '../runtime/determinism.ts';
import { bundleProgram } from './bundle-program.ts';

export interface RunLocalOptions {
  /** One task per input; `results[i]` belongs to `inputs[i]`. Give this or `main`. */
  inputs?: unknown[];
  /** The input of a single task. Give this or `inputs`. */
  main?: unknown;
  /** How many worker threads run tasks at once; default: the number of cores minus one, at least 1. */
  concurrency?: number;
  /** The job's seed (uint32), from which each task's `ctx.random` seed is derived; default 1. */
  seed?: number;
  /** Called each time a task ends. */
  onProgress?: (done: number, total: number) => void;
  /** Called for each `ctx.log` line; default: printed on stderr as `[tid] line`. */
  onLog?: (tid: string, line: string) => void;
}

export interface RunLocalResult {
  /** `results[i]` is the result of task `i`, or null when it failed. */
  results: unknown[];
  /** `errors[i]` is why task `i` failed, or null when it succeeded. */
  errors: (ErrorBody | null)[];
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: ErrorBody };

const JOB_ID = 'local';
/** Checkpoints go nowhere locally, but taking one now and then still shows a state that cannot be serialized. */
const CHECKPOINT_INTERVAL_MS = 1000;

/**
 * Runs a program's tasks in Node worker_threads, with the same runtime and the same bundle as
 * in a browser, and no coordinator. A failed task gives a null result and an error; it does not
 * stop the others.
 */
export async function runLocal(programPath: string, options: RunLocalOptions = {}): Promise<RunLocalResult> {
  const inputs = taskInputs(options);
  const concurrency = options.concurrency ?? Math.max(1, availableParallelism() - 1);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new WebpvmError('E_BAD_REQUEST', `concurrency must be a whole number of at least 1, not ${concurrency}`);
  }
  const seed = options.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new WebpvmError('E_BAD_REQUEST', `seed must be a uint32, not ${seed}`);
  }

  const [program, worker] = await Promise.all([bundleProgram({ path: programPath }), workerBundle()]);
  const dir = await mkdtemp(join(tmpdir(), 'webpvm-local-'));
  try {
    const programFile = join(dir, 'program.mjs');
    const workerFile = join(dir, 'worker.mjs');
    await Promise.all([writeFile(programFile, program), writeFile(workerFile, worker)]);
    const programUrl = pathToFileURL(programFile).href;
    const tasks = inputs.map(
      (input, i): TaskAssignment => ({
        tid: makeTid(JOB_ID, i),
        attempt: 1,
        jobId: JOB_ID,
        programUrl,
        input,
        resume: null,
        seed: taskSeed(seed, i),
        timeoutMs: null,
      }),
    );
    const onLog = options.onLog ?? ((tid, line) => process.stderr.write(`[${tid}] ${line}\n`));
    return await runPool(tasks, Math.min(concurrency, tasks.length), workerFile, onLog, options.onProgress);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function taskInputs(options: RunLocalOptions): unknown[] {
  const hasInputs = options.inputs !== undefined;
  if (hasInputs === (options.main !== undefined)) throw new WebpvmError('E_BAD_REQUEST', 'give exactly one of inputs and main');
  return options.inputs ?? [options.main];
}

async function runPool(
  tasks: TaskAssignment[],
  lanes: number,
  workerFile: string,
  onLog: (tid: string, line: string) => void,
  onProgress: ((done: number, total: number) => void) | undefined,
): Promise<RunLocalResult> {
  const results: unknown[] = tasks.map(() => null);
  const errors: (ErrorBody | null)[] = tasks.map(() => null);
  const threads: TaskThread[] = [];
  let next = 0;
  let finished = 0;

  const lane = async (): Promise<void> => {
    let thread: TaskThread | null = null;
    for (let i = next++; i < tasks.length; i = next++) {
      const task = tasks[i]!;
      if (!thread?.alive) {
        thread = new TaskThread(workerFile, onLog);
        threads.push(thread);
      }
      const outcome = await thread.run(task);
      if (outcome.ok) results[i] = outcome.value;
      else errors[i] = outcome.error;
      onProgress?.(++finished, tasks.length);
    }
  };

  try {
    await Promise.all(Array.from({ length: lanes }, lane));
  } finally {
    await Promise.all(threads.map((thread) => thread.terminate()));
  }
  return { results, errors };
}

/** One worker_thread running one task at a time; a task that kills it fails, and the pool starts another. */
class TaskThread {
  alive = true;
  readonly #worker: Worker;
  #current: { tid: string; settle: (outcome: Outcome) => void } | null = null;

  constructor(file: string, onLog: (tid: string, line: string) => void) {
    this.#worker = new Worker(file);
    this.#worker.on('message', (message: FromWorker) => {
      if (message.type === 'log') onLog(message.tid, message.line);
      else if (message.type === 'done' && message.tid === this.#current?.tid) {
        this.#settle(message.ok ? { ok: true, value: message.value } : { ok: false, error: message.error });
      }
    });
    this.#worker.on('error', (error: unknown) => this.#die(error instanceof Error ? error.message : String(error)));
    this.#worker.on('exit', (code) => this.#die(`the worker thread exited with code ${code}`));
  }

  run(task: TaskAssignment): Promise<Outcome> {
    return new Promise((settle) => {
      this.#current = { tid: task.tid, settle };
      const start: ToWorker = { type: 'start', task, checkpointIntervalMs: CHECKPOINT_INTERVAL_MS };
      this.#worker.postMessage(start);
    });
  }

  async terminate(): Promise<void> {
    await this.#worker.terminate();
  }

  #die(message: string): void {
    this.alive = false;
    this.#settle({ ok: false, error: { code: 'E_TASK_FAILED', message } });
  }

  #settle(outcome: Outcome): void {
    const current = this.#current;
    this.#current = null;
    current?.settle(outcome);
  }
}

let workerSource: Promise<string> | undefined;

/**
 * The worker entry bundled into plain JavaScript, so a worker_thread starts with no TypeScript
 * loader, however the calling process was started (tsx, the CLI, vitest).
 */
function workerBundle(): Promise<string> {
  workerSource ??= build({
    entryPoints: [fileURLToPath(new URL('./task-worker.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'silent',
  }).then(
    (result) => result.outputFiles[0]!.text,
    (error: unknown) => {
      workerSource = undefined;
      throw error;
    },
  );
  return workerSource;
}
