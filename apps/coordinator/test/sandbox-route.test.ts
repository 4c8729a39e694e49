import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiHarness } from './support/api-harness.ts';

let webRoot: string;
let h: Awaited<ReturnType<typeof apiHarness>>;
const SCRIPT = 'console.log(1)';
const hashOf = (script: string) => createHash('sha256').update(script).digest('base64');

beforeAll(async () => {
  // the sandbox script alone: its route does not depend on the pages being built
  webRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-sandbox-'));
  fs.writeFileSync(path.join(webRoot, 'sandbox.js'), SCRIPT);
  h = await apiHarness(webRoot);
});

afterAll(async () => {
  await h.close();
  fs.rmSync(webRoot, { recursive: true, force: true });
});

describe('GET /sandbox.html', () => {
  it('serves the frame with its script inline, allowed by hash, under the sandbox policy and the isolation headers', async () => {
    const res = await h.app.inject({ url: '/sandbox.html', headers: { host: 'volunteer.example' } });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain(`<script>${SCRIPT}</script>`);
    expect(res.headers).toMatchObject({
      'content-type': 'text/html; charset=utf-8',
      'cross-origin-resource-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'content-security-policy': `default-src 'none'; script-src 'sha256-${hashOf(SCRIPT)}' blob:; worker-src blob:; connect-src ws://volunteer.example/lane wss://volunteer.example/lane; sandbox allow-scripts`,
    });
  });

  it('lets task code connect to nothing but this coordinator’s relay lanes, and to nothing without a plain Host', async () => {
    const res = await h.app.inject({ url: '/sandbox.html', headers: { host: 'volunteer.example:8443' } });
    expect(res.headers['content-security-policy']).toContain('connect-src ws://volunteer.example:8443/lane wss://volunteer.example:8443/lane;');
    // a Host header that is more than a host cannot write into the policy
    const odd = await h.app.inject({ url: '/sandbox.html', headers: { host: 'x; connect-src *' } });
    expect(odd.headers['content-security-policy']).toContain("connect-src 'none';");
  });

  it('has browsers revalidate it, and picks up a rebuild without a restart', async () => {
    const first = await h.app.inject({ url: '/sandbox.html' });
    expect(first.headers['cache-control']).toBe('no-cache');
    const etag = first.headers.etag as string;
    const again = await h.app.inject({ url: '/sandbox.html', headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');

    fs.writeFileSync(path.join(webRoot, 'sandbox.js'), 'console.log(2)');
    const rebuilt = await h.app.inject({ url: '/sandbox.html', headers: { 'if-none-match': etag } });
    expect(rebuilt.statusCode).toBe(200);
    expect(rebuilt.body).toContain('<script>console.log(2)</script>');
    expect(rebuilt.headers['content-security-policy']).toContain(`'sha256-${hashOf('console.log(2)')}'`);
  });

  it('refuses to inline a script that would end its own element early', async () => {
    fs.writeFileSync(path.join(webRoot, 'sandbox.js'), 'const s = "</script><script>alert(1)";');
    const res = await h.app.inject({ url: '/sandbox.html' });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: { code: 'E_INTERNAL', message: 'the sandbox script cannot be inlined: it contains </script or <!--' } });
    fs.writeFileSync(path.join(webRoot, 'sandbox.js'), SCRIPT);
  });

  it('answers 404 and says what to do when the web app is not built', async () => {
    const bare = await apiHarness();
    try {
      const res = await bare.app.inject({ url: '/sandbox.html' });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({
        error: { code: 'E_NOT_FOUND', message: 'the task sandbox is not built (/nonexistent/sandbox.js). Run: npm run build' },
      });
    } finally {
      await bare.close();
    }
  });
});
