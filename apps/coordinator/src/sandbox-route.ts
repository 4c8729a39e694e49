import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RELAY_LANE_PATH, SANDBOX_PATH, WebpvmError } from '@webpvm/vm-protocol';
import type { FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import { ISOLATED_RESOURCE_HEADERS } from './cross-origin-isolation.ts';

/** A Host header that is a host name or address with an optional port, and nothing else. */
const PLAIN_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The task sandbox's policy (docs/sandbox.md). Its one script is inline (allowed by its hash);
 * its task workers are blob: workers made from that script, which import their program from a
 * blob: URL too, and inherit this policy. They talk to their host page through ports and to tasks
 * of other hosts on relay lanes (vm-protocol lane.ts) — WebSockets to this coordinator's
 * RELAY_LANE_PATH alone, each carrying only its task's messages to the one task it was issued
 * for. Without a plain Host header, not even those. `sandbox` keeps the document an opaque
 * origin even opened on its own.
 */
export function sandboxCsp(scriptHash: string, host: string | undefined): string {
  const lanes = host && PLAIN_HOST.test(host) ? `ws://${host}${RELAY_LANE_PATH} wss://${host}${RELAY_LANE_PATH}` : "'none'";
  return `default-src 'none'; script-src 'sha256-${scriptHash}' blob:; worker-src blob:; connect-src ${lanes}; sandbox allow-scripts`;
}

/** The frame's document: its script inline, so that it can start workers from its own text. */
function sandboxDocument(script: string): string {
  // An inline script ends at the first `</script` and changes how it is parsed at `<!--`.
  if (/<\/script|<!--/i.test(script)) throw new WebpvmError('E_INTERNAL', 'the sandbox script cannot be inlined: it contains </script or <!--');
  return `<!doctype html><html><head><meta charset="utf-8"><title>webpvm task sandbox</title><script>${script}</script></head></html>`;
}

/**
 * The task sandbox, with the policy its code runs under, which names our host: only the request
 * tells it. Read on each request, so that a rebuild needs no restart; the ETag spares the bytes
 * when nothing changed.
 */
export function registerSandboxRoute(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>,
  webRoot: string,
): void {
  const file = path.join(webRoot, 'sandbox.js');
  app.get(SANDBOX_PATH, async (request, reply) => {
    const script = await readFile(file, 'utf8').catch(() => null);
    if (script === null) throw new WebpvmError('E_NOT_FOUND', `the task sandbox is not built (${file}). Run: npm run build`);
    const hash = createHash('sha256').update(script).digest('base64');
    const etag = `"${hash}"`;
    reply.headers({
      ...ISOLATED_RESOURCE_HEADERS,
      'content-security-policy': sandboxCsp(hash, request.headers.host),
      'cache-control': 'no-cache',
      etag,
    });
    if (request.headers['if-none-match'] === etag) return reply.status(304).send();
    return reply.type('text/html; charset=utf-8').send(sandboxDocument(script));
  });
}
