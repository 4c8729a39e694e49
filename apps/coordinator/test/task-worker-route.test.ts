import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiHarness } from './support/api-harness.ts';

let webRoot: string;
let h: Awaited<ReturnType<typeof apiHarness>>;

beforeAll(async () => {
  // the worker alone: its route does not depend on the pages being built
  webRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-worker-'));
  fs.writeFileSync(path.join(webRoot, 'task-worker.js'), 'export {}');
  h = await apiHarness(webRoot);
});

afterAll(async () => {
  await h.close();
  fs.rmSync(webRoot, { recursive: true, force: true });
});

describe('GET /task-worker.js', () => {
  it('serves the built worker as a module, with the worker policy and the isolation headers', async () => {
    const res = await h.app.inject({ url: '/task-worker.js', headers: { host: 'volunteer.example' } });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('export {}');
    expect(res.headers).toMatchObject({
      'content-type': 'text/javascript; charset=utf-8',
      'cross-origin-resource-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'content-security-policy': "default-src 'none'; script-src 'self'; connect-src ws://volunteer.example/lane wss://volunteer.example/lane",
    });
  });

  it('has browsers revalidate it, and picks up a rebuild without a restart', async () => {
    const first = await h.app.inject({ url: '/task-worker.js' });
    expect(first.headers['cache-control']).toBe('no-cache');
    const etag = first.headers.etag as string;
    const again = await h.app.inject({ url: '/task-worker.js', headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');

    fs.writeFileSync(path.join(webRoot, 'task-worker.js'), 'export const rebuilt = true;');
    const rebuilt = await h.app.inject({ url: '/task-worker.js', headers: { 'if-none-match': etag } });
    expect(rebuilt.statusCode).toBe(200);
    expect(rebuilt.body).toBe('export const rebuilt = true;');
    expect(rebuilt.headers.etag).not.toBe(etag);
  });

  it('answers 404 and says what to do when the web app is not built', async () => {
    const bare = await apiHarness();
    try {
      const res = await bare.app.inject({ url: '/task-worker.js' });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({
        error: { code: 'E_NOT_FOUND', message: 'the task worker is not built (/nonexistent/task-worker.js). Run: npm run build' },
      });
    } finally {
      await bare.close();
    }
  });
});
