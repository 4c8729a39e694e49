import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebpvmError } from '@webpvm/vm-protocol';
import { ApiClient } from '../src/cli/api-client.ts';
import { followOutcomes } from '../src/cli/result-follow.ts';

let server: Server;
let url: string;
let handler: (request: IncomingMessage, response: ServerResponse) => void;
let asked: string[];

const line = (cursor: number) => `${JSON.stringify({ cursor, index: cursor - 1, ok: true, result: cursor * 10 })}\n`;
const status = (state: string) =>
  JSON.stringify({
    id: 'abcd1234',
    name: 'j',
    state,
    tasks: { total: 5, pending: 0, running: 0, done: 5, failed: 0 },
    progress: 1,
    migrations: 0,
    attempts: 5,
    priority: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    finishedAt: null,
    error: null,
  });

function collector() {
  let text = '';
  const out = new Writable({
    write(chunk, _encoding, done) {
      text += chunk;
      done();
    },
  });
  return { out, text: () => text };
}

beforeAll(async () => {
  server = createServer((request, response) => {
    asked.push(request.url ?? '');
    handler(request, response);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  asked = [];
});

describe('followOutcomes', () => {
  it('resumes after the last whole line when the connection drops, and writes every outcome once', async () => {
    let calls = 0;
    handler = (request, response) => {
      if (!request.url?.includes('/results')) return response.end(status('done'));
      calls++;
      response.writeHead(200, { 'content-type': 'application/x-ndjson' });
      if (calls === 1) {
        // two lines and half of a third, then the connection is cut
        response.write(line(1) + line(2) + line(3).slice(0, 10));
        setTimeout(() => response.destroy(), 20);
      } else if (calls === 2) {
        response.destroy();
      } else {
        response.end(line(3) + line(4) + line(5));
      }
    };
    const { out, text } = collector();
    const waits: number[] = [];
    const last = await followOutcomes(new ApiClient({ url }), 'abcd1234', { after: 0, follow: true, out, wait: async (ms) => waits.push(ms) });
    expect(last).toBe(5);
    expect(text()).toBe([1, 2, 3, 4, 5].map(line).join(''));
    expect(asked.filter((u) => u.includes('/results'))).toEqual([
      '/api/jobs/abcd1234/results?format=ndjson&after=0&follow=true',
      '/api/jobs/abcd1234/results?format=ndjson&after=2&follow=true',
      '/api/jobs/abcd1234/results?format=ndjson&after=2&follow=true',
    ]);
    // backoff: the wait doubles while nothing comes
    expect(waits).toEqual([250, 500]);
  });

  it('reads on when a response ends cleanly before the job has', async () => {
    let calls = 0;
    handler = (request, response) => {
      if (!request.url?.includes('/results')) return response.end(status(calls < 2 ? 'running' : 'done'));
      calls++;
      response.end(calls === 1 ? line(1) : line(2));
    };
    const { out, text } = collector();
    await followOutcomes(new ApiClient({ url }), 'abcd1234', { after: 0, follow: true, out, wait: async () => undefined });
    expect(text()).toBe(line(1) + line(2));
  });

  it('asks again while the coordinator cannot use its store, and reads on once it can', async () => {
    let calls = 0;
    handler = (request, response) => {
      if (!request.url?.includes('/results')) return response.end(status('done'));
      calls++;
      if (calls < 3) {
        response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' });
        return response.end(JSON.stringify({ error: { code: 'E_STORE_UNAVAILABLE', message: 'the store cannot be used: SQLITE_FULL' } }));
      }
      response.writeHead(200, { 'content-type': 'application/x-ndjson' });
      response.end(line(1) + line(2));
    };
    const { out, text } = collector();
    const waits: number[] = [];
    await followOutcomes(new ApiClient({ url }), 'abcd1234', { after: 0, follow: true, out, wait: async (ms) => waits.push(ms) });
    expect(text()).toBe(line(1) + line(2));
    expect(waits).toEqual([250, 500]);
  });

  it('gives up at once on an answer that asking again cannot change', async () => {
    handler = (_request, response) => {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { code: 'E_NOT_FOUND', message: 'no job abcd1234' } }));
    };
    const error = await followOutcomes(new ApiClient({ url }), 'abcd1234', { after: 0, follow: true, out: collector().out, wait: async () => undefined }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WebpvmError);
    expect((error as WebpvmError).code).toBe('E_NOT_FOUND');
    expect(asked).toHaveLength(1);
  });

  it('refuses a line that is not an outcome without asking again', async () => {
    handler = (_request, response) => response.end('{"hello": 1}\n');
    const error = await followOutcomes(new ApiClient({ url }), 'abcd1234', { after: 0, follow: false, out: collector().out }).catch((e: unknown) => e);
    expect((error as WebpvmError).message).toMatch(/^unexpected result line from the coordinator/);
    expect(asked).toHaveLength(1);
  });
});
