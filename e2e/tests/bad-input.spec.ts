import WebSocket from 'ws';
import { PROTOCOL_VERSION } from '@webpvm/vm-protocol';
import { readProgram } from '../support/api.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';

test('requests without a valid token are refused with 401 and change nothing', async ({ api }) => {
  const job = { program: 'export default (ctx, x) => x', inputs: [1] };
  for (const token of [null, 'wpvm_not-a-real-token']) {
    const res = await api.request('POST', '/api/jobs', job, token);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: 'E_UNAUTHORIZED', message: expect.any(String) } });
    expect((await api.request('GET', '/api/jobs', undefined, token)).status).toBe(401);
    expect((await api.request('GET', '/api/hosts', undefined, token)).status).toBe(401);
  }
  const list = (await (await api.request('GET', '/api/jobs')).json()) as { jobs: unknown[] };
  expect(list.jobs).toEqual([]);
});

test('bad job bodies get a clear error code', async ({ api }) => {
  const cases: [unknown, number, string][] = [
    [{ program: 'export default () => 1' }, 400, 'E_BAD_REQUEST'],
    [{ program: 'export default (', inputs: [1] }, 400, 'E_BAD_PROGRAM'],
    [{ program: "import fs from 'node:fs'; export default () => fs", inputs: [1] }, 400, 'E_BAD_PROGRAM'],
    [{ program: 'export const x = 1', inputs: [1] }, 400, 'E_BAD_PROGRAM'],
  ];
  for (const [body, status, code] of cases) {
    const res = await api.request('POST', '/api/jobs', body);
    expect(res.status, JSON.stringify(body)).toBe(status);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
  }
  const notJson = await fetch(`${api.baseUrl}/api/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' },
    body: '{nope',
  });
  expect(notJson.status).toBe(400);
  expect((await api.request('GET', '/api/jobs/doesnotexist')).status).toBe(404);
});

test('a malformed host message gets an error reply and does not disturb other hosts', async ({ browser, api }) => {
  await openHosts(browser, api.baseUrl, 2, 2);
  const id = await api.submit({
    name: 'undisturbed',
    program: readProgram('e2e/programs/steps.js'),
    inputs: Array.from({ length: 8 }, (_, index) => ({ index, steps: 10, stepMs: 100 })),
  });

  const socket = new WebSocket(`${api.baseUrl.replace('http', 'ws')}/ws`);
  const replies: { type: string; code?: string; ref?: string | null }[] = [];
  socket.on('message', (data) => replies.push(JSON.parse(data.toString())));
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send('this is not json');
  socket.send(JSON.stringify({ type: 'results', items: [{ tid: `${id}.0`, attempt: 1, ok: true, value: 'forged' }] }));
  socket.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 'lots', running: [], userAgent: 'x' }));
  await expect.poll(() => replies.length).toBe(3);
  expect(replies).toEqual([
    { type: 'error', code: 'E_BAD_FRAME', message: 'frame is not JSON', ref: null },
    { type: 'error', code: 'E_BAD_FRAME', message: 'send hello first', ref: 'results' },
    { type: 'error', code: 'E_BAD_FRAME', message: expect.stringContaining('slots'), ref: 'hello' },
  ]);

  // a host that says hello properly may still not report a task it was never given
  socket.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 0, running: [], userAgent: 'x', volunteer: 'e2e-raw-socket-volunteer-0123456789' }));
  await expect.poll(() => replies.some((r) => r.type === 'welcome')).toBe(true);
  socket.send(JSON.stringify({ type: 'results', items: [{ tid: `${id}.7`, attempt: 1, ok: true, value: 'forged' }] }));
  await expect.poll(() => replies.some((r) => r.code === 'E_NOT_ASSIGNED')).toBe(true);
  socket.close();

  await api.waitForState(id, 'done');
  const results = (await api.results(id)) as { index: number }[];
  expect(results.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  expect(results).not.toContain('forged');
});
