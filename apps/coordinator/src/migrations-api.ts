import { type MigrationEvent, type MigrationList, Tid, WebpvmError, parseTid } from '@webpvm/vm-protocol';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import { type Principal, canSee, requireScope } from './auth.ts';
import type { EventLog } from './event-log.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import { SseStream } from './sse-stream.ts';

export interface MigrationRoutesOptions {
  scheduler: Scheduler;
  events: EventLog;
  principal: (request: FastifyRequest) => Promise<Principal>;
}

type Api = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>;

/** A timeline longer than this is better read from the event stream, page by page. */
const TIMELINE_LIMIT = 10_000;
/** What a stream opened without `Last-Event-ID` or `?after` starts with. */
const REPLAY_LATEST = 100;
const REPLAY_PAGE = 1_000;

/** `Last-Event-ID` (what EventSource sends when it reconnects) or `?after`: null when neither is given. */
function eventIdFrom(raw: unknown): number | null {
  if (raw === undefined) return null;
  if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw)) {
    throw new WebpvmError('E_BAD_REQUEST', 'Last-Event-ID and `after` take an event id: a non-negative integer');
  }
  return Number(raw);
}

/** The migration timeline of a job, the live stream of events, and migrations ordered by hand. */
export function registerMigrationRoutes(app: Api, opts: MigrationRoutesOptions): void {
  const { scheduler, events, principal } = opts;

  async function mustSee(p: Principal, jobId: string, notFound: string): Promise<void> {
    const owner = await scheduler.views.owner(jobId);
    if (owner === null || !canSee(p, owner)) throw new WebpvmError('E_NOT_FOUND', notFound);
  }

  app.get('/api/jobs/:id/migrations', async (request): Promise<MigrationList> => {
    const p = await principal(request);
    const { id } = request.params as { id: string };
    await mustSee(p, id, `no job ${id}`);
    return { migrations: await events.list({ jobId: id, owner: null, afterId: null, limit: TIMELINE_LIMIT }) };
  });

  app.post('/api/tasks/:tid/migrate', async (request, reply) => {
    const p = await principal(request);
    const { tid } = request.params as { tid: string };
    if (!Tid.safeParse(tid).success) throw new WebpvmError('E_NOT_FOUND', `no task ${tid}`);
    await mustSee(p, parseTid(tid).jobId, `no task ${tid}`);
    requireScope(p, 'submit', 'move a task');
    const ordered = scheduler.migrations.order(tid);
    if ('code' in ordered) throw new WebpvmError(ordered.code, ordered.message);
    return reply.status(202).send({ tid, from: ordered.hostId });
  });

  /** Admins drain a host (its tasks move away, it is given nothing) and let it work again. */
  const drain = (draining: boolean) => async (request: FastifyRequest, reply: FastifyReply) => {
    const p = await principal(request);
    requireScope(p, 'admin', 'drain a host');
    const { id } = request.params as { id: string };
    const ordered = scheduler.migrations.drain(id, draining);
    if (ordered === null) throw new WebpvmError('E_NOT_FOUND', `no host ${id}`);
    return reply.status(draining ? 202 : 200).send({ hostId: id, draining, ordered });
  };
  app.post('/api/hosts/:id/drain', drain(true));
  app.delete('/api/hosts/:id/drain', drain(false));

  app.get('/api/events', async (request, reply) => {
    const p = await principal(request);
    const query = request.query as { job?: unknown; after?: unknown };
    if (query.job !== undefined && typeof query.job !== 'string') throw new WebpvmError('E_BAD_REQUEST', '`job` takes one job id');
    const jobId = query.job ?? null;
    if (jobId !== null) await mustSee(p, jobId, `no job ${jobId}`);
    const afterId = eventIdFrom(request.headers['last-event-id'] ?? query.after);
    // A stream scoped to one visible job needs no owner check per event.
    const owner = p.admin || jobId !== null ? null : p.owner;
    const scope: StreamScope = {
      jobId,
      owner,
      // Live events belong to jobs the scheduler holds: their owner is known without the store.
      admits: (e) => (jobId === null || e.jobId === jobId) && (owner === null || scheduler.views.ownerOf(e.jobId) === owner),
    };
    reply.hijack();
    streamEvents(new SseStream(reply.raw), events, scope, afterId).catch((error: unknown) =>
      request.log.error({ err: error }, 'event stream replay failed'),
    );
  });
}

/** Which events one stream shows: as a store query (replay) and as a test of each live event. */
interface StreamScope {
  jobId: string | null;
  owner: string | null;
  admits(event: MigrationEvent): boolean;
}

/**
 * Stored events after the client's last one, then live ones. The subscription starts before
 * the replay, and ids already sent are skipped, so that nothing falls between the two or comes twice.
 */
async function streamEvents(stream: SseStream, events: EventLog, scope: StreamScope, afterId: number | null): Promise<void> {
  let lastSent = afterId ?? 0;
  let open = true;
  let held: MigrationEvent[] | null = [];
  const send = (e: MigrationEvent) => {
    if (e.id <= lastSent) return;
    stream.send(e.id, e.type, e);
    lastSent = e.id;
  };
  const unsubscribe = events.subscribe({
    event: (e) => {
      if (!scope.admits(e)) return;
      if (held) held.push(e);
      else send(e);
    },
    end: () => stream.end(),
  });
  stream.onClose(() => {
    open = false;
    unsubscribe();
  });

  const { jobId, owner } = scope;
  try {
    if (afterId === null) {
      for (const e of await events.list({ jobId, owner, afterId: null, limit: REPLAY_LATEST })) send(e);
    } else {
      for (let full = true; full && open; ) {
        const page = await events.list({ jobId, owner, afterId: lastSent, limit: REPLAY_PAGE });
        for (const e of page) send(e);
        full = page.length === REPLAY_PAGE;
      }
    }
  } catch (error) {
    stream.end();
    throw error;
  }
  for (const e of held) send(e);
  held = null;
}
