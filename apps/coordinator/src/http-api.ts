import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import helmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';
import {
  type AppendInputsResponse,
  CreateTokenRequest,
  type CreateTokenResponse,
  FORWARDED_HEADERS,
  type ForwardedReply,
  type ForwardedRequest,
  GcRequest,
  type JobStatus,
  LIMITS,
  SubmitJobRequest,
  type TokenInfo,
  type TokenList,
  WebpvmError,
  describeIssues,
} from '@webpvm/vm-protocol';
import Fastify, { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Logger } from 'pino';
import { AuthThrottle } from './auth-throttle.ts';
import { type Principal, type TokenAuth, canSee, requireScope } from './auth.ts';
import { clientAddress } from './client-address.ts';
import { type Holdings, checkQuotas } from './quotas.ts';
import { ISOLATED_PAGE_HEADERS, ISOLATED_RESOURCE_HEADERS } from './cross-origin-isolation.ts';
import type { EventLog } from './event-log.ts';
import type { Metrics } from './metrics.ts';
import { registerMigrationRoutes } from './migrations-api.ts';
import { NDJSON, parseInputLines } from './ndjson-inputs.ts';
import type { ProgramRegistry } from './program-registry.ts';
import type { Retention } from './retention.ts';
import type { JobView } from './scheduler/read-views.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import type { Store, StoredToken } from './store/store.ts';
import { registerSandboxRoute } from './sandbox-route.ts';

export interface ApiOptions {
  scheduler: Scheduler;
  /** With several coordinators on one database: which one runs an unfinished job (job-leases.ts); absent when alone. */
  runnerOf?: (jobId: string) => Promise<string | null>;
  /** With NATS: a change handed to the coordinator that runs its job, and its answer (cluster-bus.ts). */
  forward?: (runner: string, request: ForwardedRequest) => Promise<ForwardedReply>;
  /** Its health: `/healthz`, and changes refused while it cannot write. */
  store: Pick<Store, 'probe' | 'engine'>;
  /** The other coordinators a page may try before it fails over to one (cluster-members.ts); '' when alone. */
  clusterSources?: () => string;
  events: EventLog;
  auth: TokenAuth;
  programs: ProgramRegistry;
  metrics: Metrics;
  log: Logger;
  webRoot: string;
  connectedHosts: () => number;
  retention: Retention;
  /** Serve https (and wss, on the same server) with this certificate chain and key. */
  tls: { cert: string; key: string } | null;
  /** Behind a proxy: a request's address is the one the proxy saw (client-address.ts). */
  trustProxy: boolean;
}

/**
 * The pages' policy: everything from this origin only — scripts, styles, workers, and
 * connections (the API, the host socket, PeerJS signalling; ICE is not CSP's; in a cluster, the
 * other coordinators' sockets too, to fail over) — no plugins, no framing by other sites. The
 * task sandbox's own route sets a stricter one (sandbox-route.ts).
 */
const PAGE_CSP = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  workerSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
};
/** Marks a change forwarded from another coordinator of the cluster: it is answered here or refused, never forwarded again. */
export const FORWARDED_HEADER = 'x-webpvm-forwarded';

/** A change as the coordinator that runs its job is handed it: what the client sent, that matters to the answer. */
function forwardedRequest(request: FastifyRequest): ForwardedRequest {
  const headers: ForwardedRequest['headers'] = {};
  for (const name of FORWARDED_HEADERS) {
    const value = request.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const body = request.body === undefined ? '' : typeof request.body === 'string' ? request.body : JSON.stringify(request.body);
  return { method: request.method as ForwardedRequest['method'], url: request.url, headers, body };
}

function sendAnswer(reply: FastifyReply, answer: ForwardedReply): FastifyReply {
  return reply.code(answer.status).type(answer.contentType).send(answer.body);
}

/** A program is task code: as a document it may do nothing at all. */
const PROGRAM_CSP = "default-src 'none'; sandbox";

/** A request's body size, as its sender declared it (Fastify refused it already if it was longer than it said). */
const bodyBytes = (request: FastifyRequest): number => Number(request.headers['content-length'] ?? 0);

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const tokenInfo = (t: StoredToken): TokenInfo => ({ id: t.id, name: t.name, scope: t.scope, owner: t.owner, createdAt: iso(t.createdAt)!, expiresAt: iso(t.expiresAt), revokedAt: iso(t.revokedAt), quotas: t.quotas });

const newJobId = (): string => BigInt(`0x${randomBytes(8).toString('hex')}`).toString(36).padStart(10, '0').slice(0, 12);

/** Seconds a client is asked to wait before it tries again when the store cannot write. */
const STORE_RETRY_AFTER_S = 5;

/** A page of `GET /api/jobs/:id/tasks` holds at most this many tasks. */
const TASKS_PAGE = 10_000;

/** An integer query parameter from `min` to `max`, or `fallback` when it is absent. */
function integerParam(raw: unknown, name: string, min: number, max: number, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && /^-?\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= min && value <= max)) throw new WebpvmError('E_BAD_REQUEST', `\`${name}\` takes an integer from ${min} to ${max}`);
  return value;
}

function booleanParam(raw: unknown, name: string): boolean {
  if (raw === undefined || raw === 'false') return false;
  if (raw === 'true' || raw === '') return true;
  throw new WebpvmError('E_BAD_REQUEST', `\`${name}\` takes true or false`);
}

function parseBody<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: import('zod').ZodError } }, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) throw new WebpvmError('E_BAD_REQUEST', describeIssues(parsed.error));
  return parsed.data;
}

/** The REST API (docs/protocol.md), the program files hosts import, metrics, and the built web app. */
export function buildApi(opts: ApiOptions) {
  const { scheduler, auth, programs } = opts;
  const { tls } = opts;
  const app = Fastify({
    // An https server is an http one to Fastify and to the WebSocket upgrades: the same events, over TLS.
    serverFactory: (handler) => (tls ? (https.createServer(tls, handler) as unknown as http.Server) : http.createServer(handler)),
    loggerInstance: opts.log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: LIMITS.requestBytes,
  });
  // HSTS only where this server speaks TLS itself: a TLS proxy in front sets its own.
  const { clusterSources } = opts;
  const directives = clusterSources ? { ...PAGE_CSP, connectSrc: [() => [...PAGE_CSP.connectSrc, clusterSources()].join(' ').trim()] } : PAGE_CSP;
  app.register(helmet, { contentSecurityPolicy: { useDefaults: false, directives }, crossOriginEmbedderPolicy: false, strictTransportSecurity: tls !== null });
  // A part of a job's inputs arrives as text and is parsed line by line by its route.
  app.addContentTypeParser(NDJSON, { parseAs: 'string', bodyLimit: LIMITS.requestBytes }, (_request, body, done) => done(null, body));

  app.setErrorHandler((thrown, request, reply) => {
    if (thrown instanceof WebpvmError) {
      if (thrown.code === 'E_STORE_UNAVAILABLE') {
        request.log.warn({ err: thrown, url: request.url.split('?')[0] }, 'request refused: the store cannot be used');
        reply.header('retry-after', String(STORE_RETRY_AFTER_S));
      }
      return reply.status(thrown.status).send({ error: thrown.toJSON() });
    }
    const error = thrown as Error & { statusCode?: number };
    const status = error.statusCode ?? 500;
    if (status === 413) return reply.status(413).send({ error: { code: 'E_TOO_LARGE', message: error.message } });
    if (status >= 400 && status < 500) return reply.status(400).send({ error: { code: 'E_BAD_REQUEST', message: error.message } });
    request.log.error({ err: error }, 'request failed');
    return reply.status(500).send({ error: { code: 'E_INTERNAL', message: 'internal error' } });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: { code: 'E_NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` } }),
  );

  const throttle = new AuthThrottle();
  /**
   * The request's token, checked. An address that keeps presenting wrong tokens is refused for a
   * while, before its next token is even looked at; a request with none guesses nothing and counts not.
   */
  const principal = async (request: FastifyRequest): Promise<Principal> => {
    const { authorization } = request.headers;
    if (!authorization) return auth.authenticate(authorization);
    const address = clientAddress(request.raw, opts.trustProxy);
    throttle.check(address);
    try {
      return await auth.authenticate(authorization);
    } catch (error) {
      if (error instanceof WebpvmError && error.code === 'E_UNAUTHORIZED') throttle.failed(address);
      throw error;
    }
  };

  const { views } = scheduler;

  /**
   * A change to an unfinished job goes to the coordinator that runs it: another one sharing the
   * database would change nothing but its own copy of the row (docs/cluster.md). With NATS it is
   * forwarded there, and its answer is this one's; else (or when it was forwarded here already,
   * from a coordinator that thought this one runs the job) a 409 names that coordinator.
   */
  const runnersAnswer = async (job: JobStatus, request: FastifyRequest): Promise<ForwardedReply | null> => {
    if (!opts.runnerOf || scheduler.jobs.job(job.id) || (job.state !== 'queued' && job.state !== 'running')) return null;
    const runner = await opts.runnerOf(job.id);
    if (runner && opts.forward && request.headers[FORWARDED_HEADER] === undefined) return opts.forward(runner, forwardedRequest(request));
    throw new WebpvmError('E_CONFLICT', `job ${job.id} is run by another coordinator${runner ? `, ${runner}` : ''}: send this there`);
  };

  /**
   * A change is refused while the store cannot write: applied in memory only, it would be lost
   * with a restart, and a 503 given after it was applied would have its client send it again.
   */
  const writable = async (): Promise<void> => {
    const health = await opts.store.probe();
    if (!health.ok) throw new WebpvmError('E_STORE_UNAVAILABLE', `the store cannot be used: ${health.reason}`);
  };

  /** Waits for the change just made to be stored; when that fails, the 503 says what became of it (`kept`). */
  const stored = (kept: string): Promise<void> =>
    scheduler.writes.durable().catch((error: unknown) => {
      if (!(error instanceof WebpvmError) || error.code !== 'E_STORE_UNAVAILABLE') throw error;
      throw new WebpvmError('E_STORE_UNAVAILABLE', `${error.message}; ${kept}`);
    });

  /** An owner's unfinished jobs and the tasks in them, against its token's quotas. */
  const holdings = (owner: string): Holdings => {
    let jobs = 0;
    let tasks = 0;
    for (const job of scheduler.jobs.active) {
      if (job.stored.owner !== owner) continue;
      jobs++;
      tasks += job.stored.total;
    }
    return { jobs, tasks };
  };

  async function visibleJob(request: FastifyRequest, p: Principal): Promise<JobView> {
    const { id } = request.params as { id: string };
    const job = await views.job(id);
    if (!job || !canSee(p, job.owner)) throw new WebpvmError('E_NOT_FOUND', `no job ${id}`);
    return job;
  }

  app.post('/api/jobs', async (request, reply) => {
    const p = await principal(request);
    requireScope(p, 'submit', 'submit jobs');
    const spec = parseBody(SubmitJobRequest, request.body);
    checkQuotas(p, holdings(p.owner), { jobs: 1, tasks: spec.inputs?.length ?? 1, bytes: bodyBytes(request) });
    await writable();
    const programHash = await programs.register(spec.program);
    if (spec.replicas > 1) await scheduler.validators.prepare(programHash, (await programs.get(programHash))!);
    const job = scheduler.jobs.submit(spec, programHash, p.owner, newJobId(), p.quotas.running ?? null);
    // The job is in memory already, and is stored when the store can write: its id spares a duplicate.
    await stored(`job ${job.stored.id} is kept and stored once the store can write (unless the coordinator stops first): look it up before submitting it again`);
    opts.metrics.jobsSubmitted.inc();
    return reply.status(201).send({ id: job.stored.id, tasks: job.stored.total });
  });

  app.get('/api/jobs', async (request) => {
    const p = await principal(request);
    return { jobs: await views.jobs(p.admin ? null : p.owner, 100) };
  });

  app.get('/api/jobs/:id', async (request) => (await visibleJob(request, await principal(request))).status);

  app.post('/api/jobs/:id/inputs', async (request, reply): Promise<AppendInputsResponse | FastifyReply> => {
    const p = await principal(request);
    const { status } = await visibleJob(request, p);
    requireScope(p, 'submit', 'add inputs to a job');
    const close = booleanParam((request.query as { close?: unknown }).close, 'close');
    if (request.body !== undefined && typeof request.body !== 'string') {
      throw new WebpvmError('E_BAD_REQUEST', `send the inputs as ${NDJSON}: one JSON value a line`);
    }
    const inputs = parseInputLines(request.body ?? '');
    checkQuotas(p, holdings(p.owner), { jobs: 0, tasks: inputs.length, bytes: bodyBytes(request) });
    const answered = await runnersAnswer(status, request);
    if (answered) return sendAnswer(reply, answered);
    const job = scheduler.jobs.job(status.id);
    if (!job?.stored.open) throw new WebpvmError('E_CONFLICT', `job ${status.id} takes no more inputs (it is ${status.state}${job ? ', not open' : ''})`);
    if (job.stored.options.roots + inputs.length > LIMITS.tasksPerBag) {
      throw new WebpvmError('E_TOO_LARGE', `a job holds at most ${LIMITS.tasksPerBag} inputs; it has ${job.stored.options.roots}`);
    }
    await writable();
    if (inputs.length) scheduler.jobs.append(job, inputs);
    if (close) scheduler.jobs.close(job);
    // Parts are not idempotent: one sent again after this 503 would be appended twice.
    await stored(`this part (${inputs.length} inputs${close ? ', and the close' : ''}) is kept and applied once the store can write (the job's total becomes ${job.stored.options.roots}): look at the job before sending it again`);
    return { added: inputs.length, total: job.stored.options.roots };
  });

  app.get('/api/jobs/:id/results', async (request, reply) => {
    const { status: job } = await visibleJob(request, await principal(request));
    const query = request.query as { format?: unknown; after?: unknown; follow?: unknown };
    const ndjson = query.format === 'ndjson';
    const follow = booleanParam(query.follow, 'follow');
    if ((query.after !== undefined || follow) && !ndjson) throw new WebpvmError('E_BAD_REQUEST', '`after` and `follow` read results as format=ndjson');
    if (query.after !== undefined || follow) {
      const after = integerParam(query.after, 'after', 0, Number.MAX_SAFE_INTEGER, 0);
      const stop = new AbortController();
      reply.raw.once('close', () => stop.abort());
      reply.type(NDJSON);
      return reply.send(Readable.from(ndjsonLines(views.outcomes(job.id, after, follow, stop.signal))));
    }
    reply.type(ndjson ? NDJSON : 'application/json; charset=utf-8');
    return reply.send(Readable.from(ndjson ? ndjsonLines(views.results(job.id)) : jsonResults(views.results(job.id))));
  });

  app.get('/api/jobs/:id/tasks', async (request) => {
    const { status: job } = await visibleJob(request, await principal(request));
    const query = request.query as { after?: unknown; limit?: unknown };
    const after = integerParam(query.after, 'after', 0, Number.MAX_SAFE_INTEGER, -1);
    return views.tasks(job.id, after, integerParam(query.limit, 'limit', 1, TASKS_PAGE, TASKS_PAGE));
  });

  app.delete('/api/jobs/:id', async (request, reply) => {
    const p = await principal(request);
    const { status: job } = await visibleJob(request, p);
    requireScope(p, 'submit', 'cancel a job');
    const answered = await runnersAnswer(job, request);
    if (answered) return sendAnswer(reply, answered);
    await writable();
    if (!scheduler.jobs.cancel(job.id)) return job;
    await scheduler.writes.durable();
    return (await views.job(job.id))?.status ?? job;
  });

  registerMigrationRoutes(app, { scheduler, events: opts.events, principal });

  /** An admin sees every host; a researcher those running tasks of its own jobs now. */
  app.get('/api/hosts', async (request) => {
    const p = await principal(request);
    return { hosts: views.hosts(p.admin ? null : p.owner) };
  });

  app.post('/api/tokens', async (request, reply): Promise<CreateTokenResponse> => {
    const p = await principal(request);
    const body = parseBody(CreateTokenRequest, request.body);
    const scope = body.scope ?? (body.admin ? 'admin' : 'submit');
    await writable();
    const { stored, token } = await auth.create(p, { name: body.name, scope, expiresInDays: body.expiresInDays ?? null, ...(body.quotas ? { quotas: body.quotas } : {}) });
    return reply.status(201).send({ ...tokenInfo(stored), admin: scope === 'admin', token });
  });

  app.get('/api/tokens', async (request): Promise<TokenList> => {
    const p = await principal(request);
    requireScope(p, 'submit', 'list tokens');
    return { tokens: (await auth.list(p)).map(tokenInfo) };
  });

  app.delete('/api/tokens/:id', async (request): Promise<TokenInfo> => {
    const p = await principal(request);
    const { id } = request.params as { id: string };
    await writable();
    const revoked = await auth.revoke(p, id);
    if (!revoked) throw new WebpvmError('E_NOT_FOUND', `no token ${id} to revoke`);
    return tokenInfo(revoked);
  });

  app.post('/api/admin/gc', async (request) => {
    const p = await principal(request);
    requireScope(p, 'admin', 'delete old jobs');
    const { olderThanDays } = parseBody(GcRequest, request.body);
    await writable();
    return opts.retention.collect(olderThanDays);
  });

  /** 503 while the store cannot write, so that a monitor or a load balancer sees what clients get. */
  app.get('/healthz', async (_request, reply) => {
    const store = await opts.store.probe();
    const hosts = opts.connectedHosts();
    const engine = opts.store.engine;
    if (store.ok) return { ok: true, hosts, store: engine };
    return reply.status(503).send({ ok: false, hosts, store: engine, reason: `the store cannot be used: ${store.reason}`, since: new Date(store.since).toISOString() });
  });

  app.get('/metrics', async (request, reply) => {
    requireScope(await principal(request), 'admin', 'read the metrics');
    reply.type(opts.metrics.registry.contentType);
    return opts.metrics.registry.metrics();
  });

  app.get('/programs/:file', async (request, reply) => {
    const { file } = request.params as { file: string };
    const match = /^([0-9a-f]{64})\.js$/.exec(file);
    const source = match ? await programs.get(match[1]!) : null;
    if (source === null) throw new WebpvmError('E_NOT_FOUND', `no program ${file}`);
    reply.type('text/javascript; charset=utf-8');
    reply.header('cache-control', 'public, max-age=31536000, immutable');
    reply.header('content-security-policy', PROGRAM_CSP);
    reply.headers(ISOLATED_RESOURCE_HEADERS);
    return source;
  });

  registerSandboxRoute(app, opts.webRoot);

  if (fs.existsSync(`${opts.webRoot}/index.html`)) {
    app.register(fastifyStatic, {
      root: opts.webRoot,
      redirect: true,
      setHeaders(res, filePath) {
        for (const [name, value] of Object.entries(filePath.endsWith('.html') ? ISOLATED_PAGE_HEADERS : ISOLATED_RESOURCE_HEADERS)) {
          res.setHeader(name, value);
        }
      },
    });
  } else {
    app.get('/', async (_request, reply) =>
      reply.type('text/plain').send(`The web app is not built (${opts.webRoot}). Run: npm run build\n`),
    );
  }

  return app;
}

/** Pages of values as NDJSON text, a page a chunk. */
async function* ndjsonLines(pages: AsyncIterable<unknown[]>): AsyncGenerator<string> {
  for await (const page of pages) yield page.map((value) => `${JSON.stringify(value ?? null)}\n`).join('');
}

/**
 * Pages of results as one `{"results": [...]}` document, written as it is read. Nothing is written
 * before the first page is read: a store that fails before then still gets its 503, not a 200 cut short.
 */
async function* jsonResults(pages: AsyncIterable<unknown[]>): AsyncGenerator<string> {
  let first = true;
  for await (const page of pages) {
    yield (first ? '{"results":[' : ',') + page.map((value) => JSON.stringify(value ?? null)).join(',');
    first = false;
  }
  yield first ? '{"results":[]}' : ']}';
}
