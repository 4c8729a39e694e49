import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebpvmError, type JobStatus } from '@webpvm/vm-protocol';
import { ApiClient } from '../src/cli/api-client.ts';

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

let server: Server;
let url: string;
let handler: Handler;
let seen: Seen[];

const job: JobStatus = {
  id: 'abcd1234',
  name: 'pi',
  state: 'running',
  tasks: { total: 4, pending: 1, running: 2, done: 1, failed: 0 },
  progress: 0.4,
  migrations: 0,
  attempts: 3,
  priority: 1,
  createdAt: '2026-01-01T00:00:00.000Z',
  finishedAt: null,
  error: null,
};

function answer(status: number, body: string, type = 'application/json'): Handler {
  return (_request, response) => {
    response.writeHead(status, { 'content-type': type });
    response.end(body);
  };
}

async function failure(promise: Promise<unknown>): Promise<WebpvmError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WebpvmError);
  return error as WebpvmError;
}

beforeAll(async () => {
  server = createServer(async (request, response) => {
    let body = '';
    for await (const chunk of request) body += chunk;
    seen.push({ method: request.method ?? '', url: request.url ?? '', authorization: request.headers.authorization, body });
    handler(request, response);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  seen = [];
  handler = answer(500, '');
});

describe('ApiClient requests', () => {
  it('sends the bearer token and the JSON body, and parses the answer', async () => {
    handler = answer(201, JSON.stringify({ id: 'abcd1234', tasks: 2 }));
    const client = new ApiClient({ url, token: 'wpvm_secret' });
    const created = await client.submitJob({ name: 'pi', program: 'export default () => 1', inputs: [1, 2] });
    expect(created).toEqual({ id: 'abcd1234', tasks: 2 });
    expect(seen).toEqual([
      {
        method: 'POST',
        url: '/api/jobs',
        authorization: 'Bearer wpvm_secret',
        body: JSON.stringify({ name: 'pi', program: 'export default () => 1', inputs: [1, 2] }),
      },
    ]);
  });

  it('sends no authorization header without a token', async () => {
    handler = answer(200, JSON.stringify({ hosts: [] }));
    await new ApiClient({ url }).listHosts();
    expect(seen[0]?.authorization).toBeUndefined();
  });

  it('joins paths to a base URL that ends with a slash', async () => {
    handler = answer(200, JSON.stringify(job));
    const client = new ApiClient({ url: `${url}/` });
    expect(client.url).toBe(url);
    await client.getJob('abcd1234');
    expect(seen[0]?.url).toBe('/api/jobs/abcd1234');
  });

  it('keeps fields a newer coordinator adds to an answer', async () => {
    handler = answer(200, JSON.stringify({ ...job, programHash: 'f00d' }));
    expect(await new ApiClient({ url }).getJob('abcd1234')).toEqual({ ...job, programHash: 'f00d' });
  });

  it('cancels with DELETE and answers the new status', async () => {
    handler = answer(200, JSON.stringify({ ...job, state: 'cancelled' }));
    const status = await new ApiClient({ url }).cancelJob('abcd1234');
    expect(status.state).toBe('cancelled');
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['DELETE /api/jobs/abcd1234']);
  });

  it('streams ndjson results as they come', async () => {
    handler = answer(200, '1\n{"a":2}\nnull\n', 'application/x-ndjson');
    let text = '';
    for await (const chunk of await new ApiClient({ url }).streamResults('abcd1234')) text += Buffer.from(chunk).toString();
    expect(text).toBe('1\n{"a":2}\nnull\n');
    expect(seen[0]?.url).toBe('/api/jobs/abcd1234/results?format=ndjson');
  });
});

describe('ApiClient streams', () => {
  it('sends a part of a job’s inputs as NDJSON, closing the job with the last one', async () => {
    handler = answer(200, JSON.stringify({ added: 2, total: 5 }));
    const client = new ApiClient({ url, token: 't' });
    expect(await client.appendInputs('abcd1234', '1\n2\n', false)).toEqual({ added: 2, total: 5 });
    await client.appendInputs('abcd1234', '3\n', true);
    expect(seen.map((s) => [s.method, s.url, s.body])).toEqual([
      ['POST', '/api/jobs/abcd1234/inputs', '1\n2\n'],
      ['POST', '/api/jobs/abcd1234/inputs?close=true', '3\n'],
    ]);
  });

  it('asks for outcomes after a cursor, following or not', async () => {
    handler = answer(200, '{"cursor":3,"index":0,"ok":true,"result":1}\n', 'application/x-ndjson');
    const client = new ApiClient({ url });
    for await (const _ of await client.streamOutcomes('abcd1234', 2, true));
    for await (const _ of await client.streamOutcomes('abcd1234', 0, false));
    expect(seen.map((s) => s.url)).toEqual([
      '/api/jobs/abcd1234/results?format=ndjson&after=2&follow=true',
      '/api/jobs/abcd1234/results?format=ndjson&after=0',
    ]);
  });
});

describe('ApiClient errors', () => {
  it('turns an {error: {code, message}} body into a WebpvmError with that code', async () => {
    handler = answer(404, JSON.stringify({ error: { code: 'E_NOT_FOUND', message: 'no job abcd1234' } }));
    const error = await failure(new ApiClient({ url, token: 't' }).getJob('abcd1234'));
    expect(error.code).toBe('E_NOT_FOUND');
    expect(error.message).toBe('no job abcd1234');
  });

  it('tells how to give a token when the coordinator wants one and none was given', async () => {
    handler = answer(401, JSON.stringify({ error: { code: 'E_UNAUTHORIZED', message: 'missing bearer token' } }));
    const withoutToken = await failure(new ApiClient({ url }).listJobs());
    expect(withoutToken.code).toBe('E_UNAUTHORIZED');
    expect(withoutToken.message).toBe('missing bearer token; pass --token or set WEBPVM_TOKEN');
    const withToken = await failure(new ApiClient({ url, token: 'wrong' }).listJobs());
    expect(withToken.message).toBe('missing bearer token');
  });

  it('takes the code from the HTTP status when the body has a code outside the registry', async () => {
    handler = answer(403, JSON.stringify({ error: { code: 'E_SOMETHING_NEW', message: 'not yours' } }));
    const error = await failure(new ApiClient({ url }).listJobs());
    expect(error.code).toBe('E_FORBIDDEN');
    expect(error.message).toBe('not yours [E_SOMETHING_NEW]');
  });

  it.each([
    [400, 'E_BAD_REQUEST'],
    [409, 'E_CONFLICT'],
    [413, 'E_TOO_LARGE'],
    [429, 'E_RATE_LIMITED'],
    [502, 'E_INTERNAL'],
  ] as const)('maps a bare HTTP %i to %s, quoting the body', async (status, code) => {
    handler = answer(status, '<html>proxy says no</html>', 'text/html');
    const error = await failure(new ApiClient({ url }).listJobs());
    expect(error.code).toBe(code);
    expect(error.message).toBe(`GET /api/jobs answered HTTP ${status}: <html>proxy says no</html>`);
  });

  it('reports an answer that is not JSON', async () => {
    handler = answer(200, 'hello', 'text/plain');
    const error = await failure(new ApiClient({ url }).listJobs());
    expect(error.code).toBe('E_INTERNAL');
    expect(error.message).toBe('unexpected answer to GET /api/jobs: not JSON: hello');
  });

  it('reports an answer that does not match the protocol, naming the field', async () => {
    handler = answer(200, JSON.stringify({ jobs: [{ ...job, state: 'sleeping' }] }));
    const error = await failure(new ApiClient({ url }).listJobs());
    expect(error.code).toBe('E_INTERNAL');
    expect(error.message).toMatch(/^unexpected answer to GET \/api\/jobs: jobs\.0\.state: /);
  });

  it('reports a coordinator that cannot be reached as E_INTERNAL with the cause', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const error = await failure(new ApiClient({ url: `http://127.0.0.1:${port}` }).listJobs());
    expect(error.code).toBe('E_INTERNAL');
    expect(error.message).toBe(
      `cannot reach the coordinator at http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
  });

  it('refuses a malformed URL or job id before sending anything', async () => {
    expect(() => new ApiClient({ url: 'localhost:8080' })).toThrow(WebpvmError);
    expect(() => new ApiClient({ url: 'not a url' })).toThrow(/not a valid coordinator URL: not a url/);
    const error = await failure(new ApiClient({ url }).getJob('../tokens'));
    expect(error.code).toBe('E_BAD_REQUEST');
    expect(seen).toEqual([]);
  });
});
