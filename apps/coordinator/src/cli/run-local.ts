import { runLocal as runInWorkerThreads, type RunLocalResult } from '@webpvm/task-sdk/node';
import { checkProgramFile, resolveTaskInputs } from './job-inputs.ts';
import { printJson, say } from './output.ts';
import { progressBar } from './progress.ts';

export interface RunLocalOptions {
  inputs?: string;
  main?: string;
  concurrency?: number;
  seed?: number;
}

/** Runs a program in Node worker threads, no coordinator and no browser: for writing and debugging programs. */
export async function runLocal(programPath: string, options: RunLocalOptions): Promise<void> {
  const path = await checkProgramFile(programPath);
  const taskInputs = await resolveTaskInputs(options);
  const bar = progressBar();
  let outcome: RunLocalResult;
  try {
    outcome = await runInWorkerThreads(path, {
      ...taskInputs,
      concurrency: options.concurrency,
      seed: options.seed,
      onProgress: (done, total) => bar.update(done, total),
    });
  } finally {
    bar.stop();
  }
  printJson({ results: outcome.results });
  const failures = outcome.errors.flatMap((error, index) => (error === null ? [] : [{ index, error }]));
  for (const { index, error } of failures) say(`task ${index}: ${error.message} (${error.code})`);
  if (failures.length > 0) {
    say(`${failures.length} of ${outcome.errors.length} tasks failed`);
    process.exitCode = 1;
  }
}
