import { once } from 'node:events';
import { ApiClient, type ClientOptions } from './api-client.ts';
import { jobLines, jobTable, printJson } from './output.ts';
import { followOutcomes } from './result-follow.ts';

export interface StatusOptions extends ClientOptions {
  json?: boolean;
}

/** Without a job: every job as a table; with one: its status, line by line. */
export async function status(jobId: string | undefined, options: StatusOptions): Promise<void> {
  const client = new ApiClient(options);
  if (jobId === undefined) {
    const list = await client.listJobs();
    if (options.json) printJson(list);
    else process.stdout.write(list.jobs.length === 0 ? 'no jobs\n' : `${jobTable(list.jobs)}\n`);
    return;
  }
  const job = await client.getJob(jobId);
  if (options.json) printJson(job);
  else process.stdout.write(`${jobLines(job)}\n`);
}

export interface ResultsOptions extends ClientOptions {
  ndjson?: boolean;
  follow?: boolean;
  after?: number;
}

export async function results(jobId: string, options: ResultsOptions): Promise<void> {
  const client = new ApiClient(options);
  if (options.follow || options.after !== undefined) {
    await followOutcomes(client, jobId, { after: options.after ?? 0, follow: options.follow === true, out: process.stdout });
    return;
  }
  if (!options.ndjson) {
    printJson(await client.getResults(jobId));
    return;
  }
  for await (const chunk of await client.streamResults(jobId)) {
    if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
  }
}

export async function cancel(jobId: string, options: ClientOptions): Promise<void> {
  const job = await new ApiClient(options).cancelJob(jobId);
  process.stdout.write(`${job.state}\n`);
}
