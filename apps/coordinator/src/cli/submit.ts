import { basename, extname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bundleProgram } from '@webpvm/task-sdk/node';
import type { JobState, JobStatus, SubmitJobRequest } from '@webpvm/vm-protocol';
import { ApiClient, type ClientOptions } from './api-client.ts';
import { checkProgramFile, resolveTaskInputs } from './job-inputs.ts';
import { printJson, say } from './output.ts';
import { progressBar } from './progress.ts';

export interface SubmitOptions extends ClientOptions {
  inputs?: string;
  main?: string;
  name?: string;
  replicas?: number;
  quorum?: number;
  maxAttempts?: number;
  timeout?: number;
  priority?: number;
  seed?: number;
  wait?: boolean;
}

const POLL_MS = 500;
const FINAL_STATES: readonly JobState[] = ['done', 'failed', 'cancelled'];

/**
 * Bundles the program, submits it and prints the job id; with `wait`, follows the job and
 * prints its results instead (exit code 1 unless it ends `done`).
 */
export async function submit(programPath: string, options: SubmitOptions): Promise<void> {
  const client = new ApiClient(options);
  const path = await checkProgramFile(programPath);
  const taskInputs = await resolveTaskInputs(options);
  const program = await bundleProgram({ path });
  const request: SubmitJobRequest = {
    name: options.name ?? basename(path, extname(path)),
    program,
    ...taskInputs,
    replicas: options.replicas,
    quorum: options.quorum,
    maxAttempts: options.maxAttempts,
    taskTimeoutMs: options.timeout,
    priority: options.priority,
    seed: options.seed,
  };
  const { id, tasks } = await client.submitJob(request);
  if (!options.wait) {
    process.stdout.write(`${id}\n`);
    return;
  }

  say(`job ${id} submitted: ${tasks} task${tasks === 1 ? '' : 's'}`);
  const final = await waitForJob(client, id);
  printJson(await client.getResults(id));
  if (final.state !== 'done') {
    const reason = final.error === null ? '' : `: ${final.error.message} (${final.error.code})`;
    say(`job ${id} ${final.state}${reason}`);
    process.exitCode = 1;
  }
}

async function waitForJob(client: ApiClient, id: string): Promise<JobStatus> {
  const bar = progressBar();
  try {
    for (;;) {
      const job = await client.getJob(id);
      bar.update(job.tasks.done, job.tasks.total, job.state);
      if (FINAL_STATES.includes(job.state)) return job;
      await sleep(POLL_MS);
    }
  } finally {
    bar.stop();
  }
}
