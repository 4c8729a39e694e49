import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobStatus, SubmitJobRequest, TaskInfo } from '@webpvm/vm-protocol';
import { expect, test } from '@playwright/test';
import { ADMIN_TOKEN } from './coordinator.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const readProgram = (relative: string): string => fs.readFileSync(path.join(repoRoot, relative), 'utf8');

/** The researcher's side of the REST API, as a test uses it. */
export class Api {
  constructor(
    readonly baseUrl: string,
    readonly token: string = ADMIN_TOKEN,
  ) {}

  async request(method: string, route: string, body?: unknown, token: string | null = this.token): Promise<Response> {
    return fetch(`${this.baseUrl}${route}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async submit(job: SubmitJobRequest): Promise<string> {
    const res = await this.request('POST', '/api/jobs', job);
    const body = (await res.json()) as { id: string };
    expect(res.status, JSON.stringify(body)).toBe(201);
    return body.id;
  }

  async job(id: string): Promise<JobStatus> {
    const res = await this.request('GET', `/api/jobs/${id}`);
    expect(res.status).toBe(200);
    return (await res.json()) as JobStatus;
  }

  /** The job's first page of tasks, in index order. */
  async tasks(id: string): Promise<TaskInfo[]> {
    const res = await this.request('GET', `/api/jobs/${id}/tasks`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { tasks: TaskInfo[] }).tasks;
  }

  async results(id: string): Promise<unknown[]> {
    const res = await this.request('GET', `/api/jobs/${id}/results`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { results: unknown[] }).results;
  }

  /**
   * Orders each of the job's tasks to migrate in turn, `sweeps` times over while the job runs,
   * `pauseMs` apart: whichever task holds a message in flight moves with it. Returns how many
   * orders were taken (202); the others found their task not running (404, 409).
   */
  async migrateInTurn(id: string, tids: readonly string[], sweeps: number, pauseMs = 40): Promise<number> {
    let ordered = 0;
    for (let sweep = 0; sweep < sweeps && (await this.job(id)).state === 'running'; sweep++) {
      for (const tid of tids) {
        const res = await this.request('POST', `/api/tasks/${tid}/migrate`);
        if (res.status === 202) ordered++;
        else expect([404, 409]).toContain(res.status);
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    }
    return ordered;
  }

  /** Polls the job until it is in `state`; past the timeout, the failure shows where each unfinished task stands. */
  async waitForState(id: string, state: JobStatus['state'], timeoutMs = 90_000): Promise<JobStatus> {
    let last: JobStatus | null = null;
    try {
      await expect
        .poll(
          async () => {
            last = await this.job(id);
            return last.state;
          },
          { timeout: timeoutMs, intervals: [250] },
        )
        .toBe(state);
    } catch (error) {
      const open = (await this.tasks(id)).filter((t) => t.state === 'pending' || t.state === 'running');
      const job = last as JobStatus | null;
      const lines = open.slice(0, 30).map((t) => `${t.tid} ${t.state} #${t.attempt} on ${t.hostId} in ${t.messagesIn} out ${t.messagesOut} from ${t.restartFrom}`);
      const body = [`${job?.state} ${JSON.stringify(job?.tasks)} migrations ${job?.migrations}`, ...lines].join('\n');
      await test.info().attach(`job ${id}, its unfinished tasks`, { body, contentType: 'text/plain' });
      throw error;
    }
    return last!;
  }

  /** Resolves once `predicate` holds for the job, polling its status. */
  async waitFor(id: string, predicate: (job: JobStatus) => boolean, timeoutMs = 60_000): Promise<JobStatus> {
    let last: JobStatus | null = null;
    await expect
      .poll(
        async () => {
          last = await this.job(id);
          return predicate(last);
        },
        { timeout: timeoutMs, intervals: [100] },
      )
      .toBe(true);
    return last!;
  }
}
