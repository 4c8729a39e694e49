import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { WebpvmError, type ErrorBody } from '@webpvm/vm-protocol';
import { bundleProgram } from './bundle-program.ts';
import { LocalJob } from './local-job.ts';

export interface RunLocalOptions {
  /** One root task per input; `results[i]` belongs to `inputs[i]`. Give this or `main`. */
  inputs?: unknown[];
  /** The input of a single root task, which may spawn the others (PVM style). Give this or `inputs`. */
  main?: unknown;
  /**
   * How many worker threads run root tasks at once; default: the number of cores minus one, at
   * least 1. A spawned task always starts at once in a thread of its own.
   */
  concurrency?: number;
  /** The job's seed (uint32), from which each task's `ctx.random` seed is derived; default 1. */
  seed?: number;
  /** Called each time a root task ends; `total` is the number of root tasks. */
  onProgress?: (done: number, total: number) => void;
  /** Called for each `ctx.log` line and each failure of a spawned task; default: printed on stderr as `[tid] line`. */
  onLog?: (tid: string, line: string) => void;
}

export interface RunLocalResult {
  /** `results[i]` is the result of root task `i`, or null when it failed. */
  results: unknown[];
  /** `errors[i]` is why root task `i` failed, or null when it succeeded. */
  errors: (ErrorBody | null)[];
}

/**
 * Runs a program's tasks in Node worker_threads, with the same runtime and the same bundle as
 * in a browser, and no coordinator (the virtual machine is a `LocalJob`). A failed root task
 * gives a null result and an error; it does not stop the others. The run ends when every root
 * task has ended: spawned tasks still running then are stopped, and a spawned task's failure
 * is only reported through `onLog`.
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
    const job = new LocalJob({
      programUrl: pathToFileURL(programFile).href,
      workerFile,
      seed,
      rootThreads: Math.min(concurrency, inputs.length),
      onLog: options.onLog ?? ((tid, line) => process.stderr.write(`[${tid}] ${line}\n`)),
      onProgress: options.onProgress,
    });
    return await job.run(inputs);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function taskInputs(options: RunLocalOptions): unknown[] {
  const hasInputs = options.inputs !== undefined;
  if (hasInputs === (options.main !== undefined)) throw new WebpvmError('E_BAD_REQUEST', 'give exactly one of inputs and main');
  return options.inputs ?? [options.main];
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
