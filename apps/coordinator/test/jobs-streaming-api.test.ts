import { ResultLine, TaskList } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, apiHarness } from './support/api-harness.ts';
import { type FakeHost, connect, settle } from './support/scheduler-harness.ts';

type Harness = Awaited<ReturnType<typeof apiHarness>>;
const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function setup(): Promise<Harness> {
  const h = await apiHarness();
  harnesses.push(h);
  return h;
}

const ndjson = (values: unknown[]) => values.map((v) => `${JSON.stringify(v)}\n`).join('');

async function openJob(h: Harness, token = ADMIN_TOKEN): Promise<string> {
  const res = await h.app.inject({
    method: 'POST',
    url: '/api/jobs',
    headers: h.bearer(token),
    payload: { program: 'export default (ctx, x) => x', inputs: [], open: true },
  });
  expect(res.statusCode, res.body).toBe(201);
  expect(res.json()).toMatchObject({ tasks: 0 });
  return res.json<{ id: string }>().id;
}

function append(h: Harness, id: string, body: string, query = '', token = ADMIN_TOKEN) {
  return h.app.inject({
    method: 'POST',
    url: `/api/jobs/${id}/inputs${query}`,
    headers: { ...h.bearer(token), 'content-type': 'application/x-ndjson' },
    payload: body,
  });
}

/** The host completes every task it holds and has not reported, each with `result(input)`. */
async function completeAll(h: Harness, host: FakeHost, result: (input: unknown) => unknown = (x) => x): Promise<void> {
  const done = new Set(host.of('ack').flatMap((m) => m.tasks.map((t) => t.tid)));
  const items = host.assigned().filter((t) => !done.has(t.tid)).map((t) => ({ tid: t.tid, attempt: t.attempt, ok: true as const, value: result(t.input) }));
  h.scheduler.reports.outcomes('ha', items);
  await settle();
}

const lines = (body: string) => body.split('\n').filter(Boolean).map((line) => ResultLine.parse(JSON.parse(line)));

describe('POST /api/jobs/:id/inputs', () => {
  it('appends the parts of an open job as they come, runs them, and ends the job once it is closed and done', async () => {
    const h = await setup();
    const id = await openJob(h);
    const host = connect(h.scheduler, 'ha', 4);
    const first = await append(h, id, ndjson([1, 2, 3]));
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toEqual({ added: 3, total: 3 });
    await settle();
    await completeAll(h, host);
    // every task so far is done, but more inputs may come: the job runs on
    expect((await h.app.inject({ url: `/api/jobs/${id}`, headers: h.bearer(ADMIN_TOKEN) })).json()).toMatchObject({
      state: 'running',
      tasks: { total: 3, done: 3 },
    });
    // blank lines are no inputs; CRLF line ends are fine
    expect((await append(h, id, '\n{"a": 1}\r\n\n  \n"four"\n')).json()).toEqual({ added: 2, total: 5 });
    expect((await append(h, id, '', '?close=true')).json()).toEqual({ added: 0, total: 5 });
    await settle();
    await completeAll(h, host);
    const status = (await h.app.inject({ url: `/api/jobs/${id}`, headers: h.bearer(ADMIN_TOKEN) })).json();
    expect(status).toMatchObject({ state: 'done', tasks: { total: 5, done: 5, pending: 0 } });
    const results = await h.app.inject({ url: `/api/jobs/${id}/results`, headers: h.bearer(ADMIN_TOKEN) });
    expect(results.json()).toEqual({ results: [1, 2, 3, { a: 1 }, 'four'] });
  });

  it('closes with the last part, and finishes at once a job whose inputs are all done', async () => {
    const h = await setup();
    const id = await openJob(h);
    const host = connect(h.scheduler, 'ha', 2);
    await append(h, id, ndjson([7]));
    await settle();
    await completeAll(h, host);
    expect((await append(h, id, ndjson([8]), '?close=true')).json()).toEqual({ added: 1, total: 2 });
    await settle();
    await completeAll(h, host);
    expect((await h.app.inject({ url: `/api/jobs/${id}`, headers: h.bearer(ADMIN_TOKEN) })).json()).toMatchObject({ state: 'done' });
    const empty = await openJob(h);
    expect((await append(h, empty, '', '?close=true')).json()).toEqual({ added: 0, total: 0 });
    expect((await h.app.inject({ url: `/api/jobs/${empty}`, headers: h.bearer(ADMIN_TOKEN) })).json()).toMatchObject({
      state: 'done',
      tasks: { total: 0 },
    });
  });

  it('refuses a part with a line that is not JSON, naming the line, and adds none of it', async () => {
    const h = await setup();
    const id = await openJob(h);
    const res = await append(h, id, '1\n\n{"ok": true}\n{oops\n5\n');
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('E_BAD_REQUEST');
    expect(res.json().error.message).toMatch(/^line 4 is not JSON/);
    expect((await h.app.inject({ url: `/api/jobs/${id}`, headers: h.bearer(ADMIN_TOKEN) })).json().tasks.total).toBe(0);
    const json = await h.app.inject({ method: 'POST', url: `/api/jobs/${id}/inputs`, headers: h.bearer(ADMIN_TOKEN), payload: [1, 2] });
    expect(json.statusCode).toBe(400);
    expect(json.json().error.message).toContain('application/x-ndjson');
  });

  it('hides the job from another owner, and refuses a job that is not open or has ended', async () => {
    const h = await setup();
    const alice = await h.token('alice');
    const bob = await h.token('bob');
    const id = await openJob(h, alice);
    const other = await append(h, id, ndjson([1]), '', bob);
    expect(other.statusCode).toBe(404);
    expect(other.json().error.code).toBe('E_NOT_FOUND');
    expect((await append(h, id, ndjson([1]), '', alice)).statusCode).toBe(200);
    expect((await append(h, id, ndjson([2]), '', ADMIN_TOKEN)).statusCode).toBe(200);

    const closed = await h.submit(alice, [1, 2]);
    const notOpen = await append(h, closed, ndjson([3]), '', alice);
    expect(notOpen.statusCode).toBe(409);
    expect(notOpen.json().error.code).toBe('E_CONFLICT');

    expect((await append(h, id, '', '?close=true', alice)).statusCode).toBe(200);
    expect((await append(h, id, ndjson([3]), '', alice)).statusCode).toBe(409);
    const cancelled = await openJob(h, alice);
    await h.app.inject({ method: 'DELETE', url: `/api/jobs/${cancelled}`, headers: h.bearer(alice) });
    expect((await append(h, cancelled, ndjson([1]), '', alice)).json().error.code).toBe('E_CONFLICT');
    expect((await append(h, cancelled, ndjson([1]), '?close=maybe', alice)).statusCode).toBe(400);
  });

  it('takes an open bag only, and a bag without inputs only when it is open', async () => {
    const h = await setup();
    const submit = (payload: object) => h.app.inject({ method: 'POST', url: '/api/jobs', headers: h.bearer(ADMIN_TOKEN), payload: { program: 'export default (c, x) => x', ...payload } });
    expect((await submit({ inputs: [] })).statusCode).toBe(400);
    expect((await submit({ main: 1, open: true })).statusCode).toBe(400);
    expect((await submit({ inputs: [1], open: true })).json()).toMatchObject({ tasks: 1 });
  });
});

describe('GET /api/jobs/:id/results?format=ndjson&after=', () => {
  it('gives each root outcome once, in the order they were stored, after a cursor', async () => {
    const h = await setup();
    const id = await h.submit(ADMIN_TOKEN, [10, 20, 30, 40]);
    const host = connect(h.scheduler, 'ha', 4);
    await settle();
    const [t0, t1, t2, t3] = host.assigned();
    h.scheduler.reports.outcomes('ha', [{ tid: t2!.tid, attempt: 1, ok: true, value: 'c' }]);
    await settle();
    h.scheduler.reports.outcomes('ha', [
      { tid: t0!.tid, attempt: 1, ok: true, value: 'a' },
      { tid: t3!.tid, attempt: 1, ok: false, error: { code: 'E_TASK_FAILED', message: 'no' } },
    ]);
    await settle();
    const read = async (query: string) => {
      const res = await h.app.inject({ url: `/api/jobs/${id}/results?format=ndjson&${query}`, headers: h.bearer(ADMIN_TOKEN) });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toContain('application/x-ndjson');
      return lines(res.body);
    };
    expect(await read('after=0')).toEqual([
      { cursor: 1, index: 2, ok: true, result: 'c' },
      { cursor: 2, index: 0, ok: true, result: 'a' },
    ]);
    h.scheduler.reports.outcomes('ha', [{ tid: t3!.tid, attempt: 2, ok: false, error: { code: 'E_TASK_FAILED', message: 'no' } }]);
    await settle();
    expect((await read('after=2')).map((l) => l.index)).toEqual([]);
    // the third attempt fails for good: its outcome is stored, with its error
    const retried = host.assigned().filter((t) => t.tid === t3!.tid);
    h.scheduler.reports.outcomes('ha', [{ tid: t3!.tid, attempt: retried.length, ok: false, error: { code: 'E_TASK_FAILED', message: 'no' } }]);
    await settle();
    h.scheduler.reports.outcomes('ha', [{ tid: t1!.tid, attempt: 1, ok: true, value: 'b' }]);
    await settle();
    expect(await read('after=2')).toEqual([
      { cursor: 3, index: 3, ok: false, error: { code: 'E_TASK_FAILED', message: 'no' } },
      { cursor: 4, index: 1, ok: true, result: 'b' },
    ]);
    // without a cursor: every result in input order, null where none is done
    const all = await h.app.inject({ url: `/api/jobs/${id}/results?format=ndjson`, headers: h.bearer(ADMIN_TOKEN) });
    expect(all.body).toBe('"a"\n"b"\n"c"\nnull\n');
    const bad = await h.app.inject({ url: `/api/jobs/${id}/results?after=1`, headers: h.bearer(ADMIN_TOKEN) });
    expect(bad.statusCode).toBe(400);
    expect((await h.app.inject({ url: `/api/jobs/${id}/results?format=ndjson&after=-1`, headers: h.bearer(ADMIN_TOKEN) })).statusCode).toBe(400);
  });

  it('with follow=true, writes outcomes as they are stored and ends when the job ends', async () => {
    const h = await setup();
    const id = await openJob(h);
    const host = connect(h.scheduler, 'ha', 4);
    await append(h, id, ndjson([1, 2]));
    const following = h.app.inject({ url: `/api/jobs/${id}/results?format=ndjson&follow=true`, headers: h.bearer(ADMIN_TOKEN) });
    let ended = false;
    void following.then(() => (ended = true));
    await settle();
    await completeAll(h, host, (x) => (x as number) * 100);
    await append(h, id, ndjson([3]), '?close=true');
    await settle();
    expect(ended).toBe(false);
    await completeAll(h, host, (x) => (x as number) * 100);
    const res = await following;
    expect(res.statusCode).toBe(200);
    expect(lines(res.body).map((l) => [l.cursor, l.ok && l.result])).toEqual([
      [1, 100],
      [2, 200],
      [3, 300],
    ]);
    // from a cursor, on a finished job: what is left, then the end
    const rest = await h.app.inject({ url: `/api/jobs/${id}/results?format=ndjson&after=2&follow=true`, headers: h.bearer(ADMIN_TOKEN) });
    expect(lines(rest.body).map((l) => l.cursor)).toEqual([3]);
  });

  it('ends a follow when the job is cancelled', async () => {
    const h = await setup();
    const id = await h.submit(ADMIN_TOKEN, [1, 2, 3]);
    const following = h.app.inject({ url: `/api/jobs/${id}/results?format=ndjson&follow=true&after=0`, headers: h.bearer(ADMIN_TOKEN) });
    await settle();
    await h.app.inject({ method: 'DELETE', url: `/api/jobs/${id}`, headers: h.bearer(ADMIN_TOKEN) });
    expect((await following).body).toBe('');
  });
});

describe('following results over a connection that drops', () => {
  it('resumes from the last cursor read and gets every later outcome once', async () => {
    const h = await setup();
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const address = h.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
    const base = `http://127.0.0.1:${address.port}`;
    const id = await openJob(h);
    const host = connect(h.scheduler, 'ha', 8);
    await append(h, id, ndjson([1, 2, 3]));
    await settle();
    await completeAll(h, host);

    const abort = new AbortController();
    const res = await fetch(`${base}/api/jobs/${id}/results?format=ndjson&follow=true`, { headers: h.bearer(ADMIN_TOKEN), signal: abort.signal });
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/\n/g) ?? []).length < 3) text += new TextDecoder().decode((await reader.read()).value);
    abort.abort();
    const seen = lines(text);
    expect(seen.map((l) => l.cursor)).toEqual([1, 2, 3]);

    await append(h, id, ndjson([4, 5]), '?close=true');
    await settle();
    await completeAll(h, host);
    const resumed = await fetch(`${base}/api/jobs/${id}/results?format=ndjson&follow=true&after=${seen.at(-1)!.cursor}`, { headers: h.bearer(ADMIN_TOKEN) });
    const rest = lines(await resumed.text());
    expect([...seen, ...rest].map((l) => l.ok && l.result).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(rest.map((l) => l.cursor)).toEqual([4, 5]);
  });
});

describe('GET /api/jobs/:id/tasks', () => {
  it('pages a job’s tasks by index, with what memory knows of the running ones', async () => {
    const h = await setup();
    const id = await h.submit(ADMIN_TOKEN, Array.from({ length: 25 }, (_, i) => i));
    connect(h.scheduler, 'ha', 1);
    await settle();
    const page = async (query: string) => {
      const res = await h.app.inject({ url: `/api/jobs/${id}/tasks${query}`, headers: h.bearer(ADMIN_TOKEN) });
      expect(res.statusCode, res.body).toBe(200);
      return TaskList.parse(res.json());
    };
    const first = await page('?limit=10');
    expect(first.tasks.map((t) => t.tid)).toEqual(Array.from({ length: 10 }, (_, i) => `${id}.${i}`));
    expect(first.tasks[0]).toMatchObject({ state: 'running', attempt: 1, hostId: 'ha' });
    expect(first.next).toBe(9);
    const second = await page('?limit=10&after=9');
    expect(second.tasks[0]?.tid).toBe(`${id}.10`);
    expect((await page('?limit=10&after=19')).tasks.map((t) => t.tid)).toEqual(Array.from({ length: 5 }, (_, i) => `${id}.${20 + i}`));
    expect((await page('?limit=10&after=19')).next).toBeNull();
    const all = await page('');
    expect(all.tasks).toHaveLength(25);
    expect(all.next).toBeNull();
    expect((await h.app.inject({ url: `/api/jobs/${id}/tasks?limit=10001`, headers: h.bearer(ADMIN_TOKEN) })).statusCode).toBe(400);
  });
});
