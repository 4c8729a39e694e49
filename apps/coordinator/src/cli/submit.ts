import { stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bundleProgram } from '@webpvm/task-sdk/node';
import { type JobState, type JobStatus, type SubmitJobRequest, type SubmitJobResponse, WebpvmError } from '@webpvm/vm-protocol';
import { ApiClient, type ClientOptions } from './api-client.ts';
import { checkProgramFile, resolveTaskInputs } from './job-inputs.ts';
import { inputParts } from './ndjson-file.ts';
import { printJson, say } from './output.ts';
import { progressBar } from './progress.ts';

export interface SubmitOptions extends ClientOptions {
  inputs?: string;
  main?: string;
  name?: string;
  replicas?: number;
  quorum?: number;
  tolerance?: number;
  adaptive?: boolean;
  spotCheck?: number;
  distinctAddresses?: boolean;
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
 * prints its results instead (exit code 1 unless it ends `done`). The inputs of an `.ndjson`
 * file are streamed to the job in parts.
 */
export async function submit(programPath: string, options: SubmitOptions): Promise<void> {
  const client = new ApiClient(options);
  const path = await checkProgramFile(programPath);
  const jobInputs = await resolveTaskInputs(options, true);
  const program = await bundleProgram({ path });
  const request: SubmitJobRequest = {
    name: options.name ?? basename(path, extname(path)),
    program,
    replicas: options.replicas,
    quorum: options.quorum,
    tolerance: options.tolerance,
    adaptive: options.adaptive,
    spotCheck: options.spotCheck,
    ...(options.distinctAddresses ? { distinct: 'address' as const } : {}),
    maxAttempts: options.maxAttempts,
    taskTimeoutMs: options.timeout,
    priority: options.priority,
    seed: options.seed,
  };
  const { id, tasks } = 'ndjson' in jobInputs ? await submitStreamed(client, request, jobInputs.ndjson) : await client.submitJob({ ...request, ...jobInputs });
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

/**
 * Makes an open job, then sends it the file's inputs in parts, the last one closing it. A part
 * that is refused, or a coordinator lost on the way, cancels the job: no half-sent job runs on.
 */
async function submitStreamed(client: ApiClient, request: SubmitJobRequest, file: string): Promise<SubmitJobResponse> {
  const parts = inputParts(file);
  let next = await parts.next();
  if (next.done) throw new WebpvmError('E_BAD_REQUEST', `inputs file ${file} holds no inputs`);
  const { id } = await client.submitJob({ ...request, inputs: [], open: true });
  const fileBytes = (await stat(file)).size;
  say(`job ${id} created; sending the inputs of ${file}`);
  const bar = progressBar('bytes of inputs sent');
  let total = 0;
  let count = 0;
  try {
    while (!next.done) {
      const part = next.value;
      // The part after this one is read first: the last part closes the job's inputs.
      const after = await parts.next();
      ({ total } = await client.appendInputs(id, part.text, after.done === true));
      count++;
      bar.update(part.fileBytes, fileBytes, `(${total} inputs)`);
      next = after;
    }
  } catch (error) {
    bar.stop();
    await client.cancelJob(id).catch(() => undefined);
    say(`job ${id} cancelled: its inputs were not all sent`);
    throw error;
  }
  bar.stop();
  say(`sent ${total} inputs to job ${id} in ${count} part${count === 1 ? '' : 's'}`);
  return { id, tasks: total };
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
