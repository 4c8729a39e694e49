import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ResultLine } from '@webpvm/vm-protocol';
import { readProgram } from '../support/api.ts';
import { webpvm } from '../support/cli.ts';
import { ADMIN_TOKEN } from '../support/coordinator.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';

const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
const input = (index: number) => ({ index, steps: 2, stepMs: 40 });

/**
 * Reads `?follow=true` lines after `after` until `stop` says enough (then drops the connection)
 * or the coordinator ends the response; answers the lines read whole.
 */
async function follow(baseUrl: string, jobId: string, after: number, stop: (lines: ResultLine[]) => boolean): Promise<{ lines: ResultLine[]; ended: boolean }> {
  const abort = new AbortController();
  const res = await fetch(`${baseUrl}/api/jobs/${jobId}/results?format=ndjson&follow=true&after=${after}`, { headers: auth, signal: abort.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const lines: ResultLine[] = [];
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { lines, ended: true };
    pending += decoder.decode(value, { stream: true });
    for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n')) {
      lines.push(ResultLine.parse(JSON.parse(pending.slice(0, end))));
      pending = pending.slice(end + 1);
    }
    if (stop(lines)) {
      abort.abort();
      return { lines, ended: false };
    }
  }
}

test('a job’s inputs streamed in parts while it runs; its results followed, dropped and resumed, each once', async ({ browser, api }) => {
  await openHosts(browser, api.baseUrl, 2, 2);
  const created = await api.request('POST', '/api/jobs', { name: 'streamed', program: readProgram('e2e/programs/steps.js'), inputs: [], open: true });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };
  const parts = [
    Array.from({ length: 12 }, (_, i) => i),
    Array.from({ length: 10 }, (_, i) => 12 + i),
    Array.from({ length: 14 }, (_, i) => 22 + i),
  ];
  const total = parts.flat().length;
  const send = async (indexes: number[], close: boolean) => {
    const res = await fetch(`${api.baseUrl}/api/jobs/${id}/inputs${close ? '?close=true' : ''}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/x-ndjson' },
      body: indexes.map((i) => `${JSON.stringify(input(i))}\n`).join(''),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as { added: number; total: number };
  };

  // the first part runs; a reader follows the results and drops its connection after a few
  expect(await send(parts[0]!, false)).toEqual({ added: 12, total: 12 });
  const first = await follow(api.baseUrl, id, 0, (lines) => lines.length >= 5);
  expect(first.ended).toBe(false);
  // the job runs on with more inputs while nobody reads; all it has so far done, it is still running
  expect(await send(parts[1]!, false)).toEqual({ added: 10, total: 22 });
  await api.waitFor(id, (job) => job.tasks.done === 22);
  expect((await api.job(id)).state).toBe('running');
  const lastCursor = first.lines.at(-1)!.cursor;
  const resumed = follow(api.baseUrl, id, lastCursor, () => false);
  expect(await send(parts[2]!, true)).toEqual({ added: 14, total });
  const rest = await resumed;
  expect(rest.ended).toBe(true);

  const lines = [...first.lines, ...rest.lines];
  expect(lines.map((l) => l.cursor)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  expect(lines.map((l) => l.index).sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));
  for (const line of lines) {
    expect(line.ok).toBe(true);
    if (line.ok) expect(line.result).toMatchObject({ index: line.index, steps: 2 });
  }
  const job = await api.waitForState(id, 'done');
  expect(job.tasks).toEqual({ total, pending: 0, running: 0, done: total, failed: 0 });
  expect(((await api.results(id)) as { index: number }[]).map((r) => r.index)).toEqual(Array.from({ length: total }, (_, i) => i));
});

test('the CLI streams an .ndjson inputs file to a job and waits for its results', async ({ browser, api }) => {
  await openHosts(browser, api.baseUrl, 2, 2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-e2e-ndjson-'));
  try {
    const file = path.join(dir, 'steps.ndjson');
    fs.writeFileSync(file, `${Array.from({ length: 9 }, (_, i) => JSON.stringify(input(i))).join('\n')}\n\n`);
    const env = { WEBPVM_URL: api.baseUrl, WEBPVM_TOKEN: ADMIN_TOKEN };
    const run = await webpvm(['submit', 'e2e/programs/steps.js', '--inputs', file, '--wait'], env);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/sent 9 inputs to job \w+ in 1 part/);
    const { results } = JSON.parse(run.stdout) as { results: { index: number; steps: number }[] };
    expect(results.map((r) => r.index)).toEqual(Array.from({ length: 9 }, (_, i) => i));

    const id = /job (\w+) created/.exec(run.stderr)![1]!;
    const followed = await webpvm(['results', id, '--follow'], env);
    expect(followed.code, followed.stderr).toBe(0);
    const lines = followed.stdout.trim().split('\n').map((l) => ResultLine.parse(JSON.parse(l)));
    expect(lines.map((l) => l.cursor)).toEqual(Array.from({ length: 9 }, (_, i) => i + 1));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
