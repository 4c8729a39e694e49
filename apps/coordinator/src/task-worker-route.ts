import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RELAY_LANE_PATH, WebpvmError } from '@webpvm/vm-protocol';
import type { FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import { ISOLATED_RESOURCE_HEADERS } from './cross-origin-isolation.ts';

/** Where host pages start their task workers; the web app's build writes the script (vite.task-worker.config.ts). */
export const TASK_WORKER_PATH = '/task-worker.js';

/** A Host header that is a host name or address with an optional port, and nothing else. */
const PLAIN_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * Task code runs with no network: it talks to its host through postMessage, and to tasks of
 * other hosts on relay lanes (vm-protocol lane.ts) — WebSockets to this coordinator's
 * RELAY_LANE_PATH alone, which carry only the task's own messages to the one task of its job
 * each lane was issued for. Without a plain Host header, not even those.
 */
export function workerCsp(host: string | undefined): string {
  const base = "default-src 'none'; script-src 'self'";
  return host && PLAIN_HOST.test(host) ? `${base}; connect-src ws://${host}${RELAY_LANE_PATH} wss://${host}${RELAY_LANE_PATH}` : base;
}

/**
 * The task worker's script, with the policy its code runs under: a dedicated worker takes the CSP
 * of its script's response, and this one names our host, which only the request tells. Read on
 * each request, so that a rebuild needs no restart; the ETag spares the bytes when nothing changed.
 */
export function registerTaskWorkerRoute(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>,
  webRoot: string,
): void {
  const file = path.join(webRoot, 'task-worker.js');
  app.get(TASK_WORKER_PATH, async (request, reply) => {
    const source = await readFile(file, 'utf8').catch(() => null);
    if (source === null) throw new WebpvmError('E_NOT_FOUND', `the task worker is not built (${file}). Run: npm run build`);
    const etag = `"${createHash('sha256').update(source).digest('base64url')}"`;
    reply.headers({
      ...ISOLATED_RESOURCE_HEADERS,
      'content-security-policy': workerCsp(request.headers.host),
      'cache-control': 'no-cache',
      etag,
    });
    if (request.headers['if-none-match'] === etag) return reply.status(304).send();
    return reply.type('text/javascript; charset=utf-8').send(source);
  });
}
