import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, apiHarness } from './support/api-harness.ts';

let webRoot: string;
let h: Awaited<ReturnType<typeof apiHarness>>;

beforeAll(async () => {
  webRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-web-'));
  const files: Record<string, string> = {
    'index.html': '<!doctype html><title>host</title>',
    'dashboard/index.html': '<!doctype html><title>dashboard</title>',
    'assets/host-abc.js': 'export {}',
    'assets/styles-abc.css': 'body {}',
    'assets/sandbox-abc.js': 'export {}',
    'sandbox.js': 'console.log(1)',
  };
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(webRoot, file)), { recursive: true });
    fs.writeFileSync(path.join(webRoot, file), text);
  }
  h = await apiHarness(webRoot);
});

afterAll(async () => {
  await h.close();
  fs.rmSync(webRoot, { recursive: true, force: true });
});

const PAGE_POLICY = "default-src 'self';script-src 'self';style-src 'self';img-src 'self' data:;connect-src 'self';worker-src 'self';object-src 'none';base-uri 'none';form-action 'self';frame-ancestors 'none'";
const isolated = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };
const embeddable = { 'cross-origin-resource-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

describe('cross-origin isolation', () => {
  it('isolates the host page and the dashboard', async () => {
    for (const url of ['/', '/dashboard/']) {
      const res = await h.app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers, url).toMatchObject(isolated);
    }
    expect((await h.app.inject({ url: '/dashboard' })).headers.location).toBe('/dashboard/');
  });

  it('lets the isolated pages load their scripts, styles and sandbox frames', async () => {
    for (const url of ['/assets/host-abc.js', '/assets/styles-abc.css', '/sandbox.html']) {
      const res = await h.app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers, url).toMatchObject(embeddable);
    }
    expect((await h.app.inject({ url: '/sandbox.html' })).headers['content-security-policy']).toMatch(/^default-src 'none'; script-src 'sha256-/);
    expect((await h.app.inject({ url: '/assets/host-abc.js' })).headers['content-security-policy']).toBe(PAGE_POLICY);
    // the sandbox's policy goes with the route, not with a file name
    expect((await h.app.inject({ url: '/assets/sandbox-abc.js' })).headers['content-security-policy']).toBe(PAGE_POLICY);
  });

  it('gives the pages a strict policy and the usual security headers, and programs none of a page’s powers', async () => {
    for (const url of ['/', '/dashboard/']) {
      const res = await h.app.inject({ url });
      expect(res.headers, url).toMatchObject({ 'content-security-policy': PAGE_POLICY, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' });
      // plain http here: no HSTS (tls.test.ts sees it over https)
      expect(res.headers['strict-transport-security'], url).toBeUndefined();
    }
    const submitted = await h.app.inject({ method: 'POST', url: '/api/jobs', headers: h.bearer(ADMIN_TOKEN), payload: { program: 'export default (ctx, x) => x', inputs: [1] } });
    const { programHash } = h.scheduler.jobs.job(submitted.json<{ id: string }>().id)!.stored;
    const program = await h.app.inject({ url: `/programs/${programHash}.js` });
    expect(program.statusCode).toBe(200);
    expect(program.headers['content-security-policy']).toBe("default-src 'none'; sandbox");
  });

  it('lets host pages fetch programs for their sandboxes', async () => {
    const hash = await h.programs.register('export default (ctx, x) => x');
    const res = await h.app.inject({ url: `/programs/${hash}.js` });
    expect(res.statusCode).toBe(200);
    expect(res.headers).toMatchObject({ ...embeddable, 'content-type': 'text/javascript; charset=utf-8' });
  });
});
