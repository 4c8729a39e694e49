import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import pino from 'pino';
import { type ForwardedRequest, RELAY_LANE_PATH } from '@webpvm/vm-protocol';
import { TokenAuth } from './auth.ts';
import { type CoordinatorConfig, loadConfig } from './config.ts';
import { EventLog } from './event-log.ts';
import { HostGateway } from './host-gateway.ts';
import { FORWARDED_HEADER, buildApi } from './http-api.ts';
import { createMetrics, volunteerMetrics } from './metrics.ts';
import { PEERJS_SOCKET_PATH, mountPeerServer } from './peer-signalling.ts';
import { ProgramRegistry, programUrl } from './program-registry.ts';
import { Retention } from './retention.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import { ClusterBus } from './cluster-bus.ts';
import { ClusterMembers } from './cluster-members.ts';
import { JobOwnership } from './job-ownership.ts';
import { EVENT_ID_BLOCK } from './store/postgres-schema.ts';
import { PostgresStore } from './store/postgres-store.ts';
import { SqliteStore } from './store/sqlite-store.ts';

export { loadConfig, type CoordinatorConfig };

/**
 * The name of this coordinator's job leases: its public URL, or where it listens. Port 0 (a free
 * port, chosen at listen) gives no stable name: a random one, which a restart does not share.
 */
function coordinatorId(config: CoordinatorConfig): string {
  if (config.publicUrl) return config.publicUrl;
  if (config.port !== 0) return `${config.tls ? 'https' : 'http'}://${os.hostname()}:${config.port}`;
  return `coordinator-${randomUUID()}`;
}

/** How long requests in flight get to finish when the coordinator stops. */
const CLOSE_GRACE_MS = 2_000;

export interface RunningCoordinator {
  url: string;
  /** The admin token made on the very first start, to print once; null on later starts. */
  firstAdminToken: string | null;
  close(): Promise<void>;
}

/** Wires store, scheduler, host gateway and HTTP API into one listening coordinator. */
export async function startCoordinator(config: CoordinatorConfig): Promise<RunningCoordinator> {
  // Logs go to stderr, so that stdout carries only what `webpvm start` prints for the person.
  const log = pino({ level: config.logLevel, base: { svc: 'coordinator' } }, pino.destination(2));
  const id = coordinatorId(config);
  const store = config.databaseUrl
    ? await PostgresStore.open(config.databaseUrl, { ownership: { coordinator: id, leaseMs: config.jobLeaseMs } })
    : new SqliteStore(path.join(config.dataDir, 'webpvm.sqlite'), { synchronous: config.sqliteSynchronous });
  const leases = store instanceof PostgresStore ? store : null;
  const bus = config.natsUrl ? await ClusterBus.connect(config.natsUrl, id, log) : null;
  const auth = new TokenAuth(store);
  const firstAdminToken = await auth.bootstrap(config.adminToken);
  const metrics = createMetrics();
  const eventLog = await EventLog.open(store, log, undefined, leases && { size: EVENT_ID_BLOCK, next: () => leases.eventIdBlock() });
  const programs = new ProgramRegistry(store);
  const retention = new Retention(store, log);
  if (config.retentionDays !== null) retention.keep(config.retentionDays);
  const scheduler = new Scheduler({
    store,
    log,
    migrations: eventLog,
    checkpointIntervalMs: config.checkpointIntervalMs,
    reconnectGraceMs: config.reconnectGraceMs,
    leaseFloorMs: config.leaseFloorMs,
    programSource: (hash) => programs.get(hash),
    programUrl,
    // A takeover comes within a lease and a renewal of its owner's death: hosts' tasks are held that long.
    ...(leases ? { heldMs: 2 * config.jobLeaseMs } : {}),
  });
  volunteerMetrics(metrics.registry, scheduler.hosts.volunteers);
  const members = new ClusterMembers();
  const ownership =
    leases &&
    new JobOwnership({
      leases,
      log,
      leaseMs: config.jobLeaseMs,
      adopt: (jobIds) => scheduler.adopt(jobIds),
      running: (jobId) => scheduler.jobs.job(jobId)?.stored.finishedAt === null,
      lost: (jobIds) => {
        // Another coordinator runs these jobs now and the store refuses this one's writes to them:
        // going on would hand out their tasks twice. A process manager starts it again, afresh.
        log.fatal({ jobs: jobIds }, 'jobs this coordinator ran were taken over by another; stopping');
        process.exit(1);
      },
      members: (coordinators) => members.update(coordinators),
    });
  await scheduler.restore(ownership ? await ownership.claimAtStart() : undefined);
  ownership?.run();
  const ticker = setInterval(() => scheduler.tick(), 250);
  const gateway = new HostGateway({
    scheduler,
    store,
    log,
    metrics,
    heartbeatMs: config.heartbeatMs,
    hostTimeoutMs: config.hostTimeoutMs,
    checkpointIntervalMs: config.checkpointIntervalMs,
    iceServers: config.iceServers,
    iceTransportPolicy: config.iceTransportPolicy,
    hostsPerAddress: config.hostsPerAddress,
    trustProxy: config.trustProxy,
    hostBytesPerSecond: config.hostBytesPerSecond,
    jobBytesPerSecond: config.jobBytesPerSecond,
    members,
  });
  const app = buildApi({
    scheduler,
    ...(leases ? { runnerOf: (jobId: string) => leases.runnerOf(jobId), clusterSources: () => members.connectSources } : {}),
    ...(bus ? { forward: (runner: string, request: ForwardedRequest) => bus.forward(runner, request) } : {}),
    store,
    events: eventLog,
    auth,
    programs,
    retention,
    metrics,
    log,
    webRoot: config.webRoot,
    connectedHosts: () => gateway.connectedHosts,
    tls: config.tls,
    trustProxy: config.trustProxy,
  });
  bus?.serve(async ({ method, url, headers, body }) => {
    const response = await app.inject({ method, url, headers: { ...headers, [FORWARDED_HEADER]: '1' }, ...(body ? { payload: body } : {}) });
    return { status: response.statusCode, contentType: String(response.headers['content-type'] ?? 'text/plain'), body: response.body };
  });
  const peers = mountPeerServer(app.server, (peerId, token) => gateway.isIssuedPeerId(peerId, token));
  app.server.on('upgrade', (request, socket, head) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    if (path === '/ws') gateway.handleUpgrade(request, socket, head);
    else if (path === RELAY_LANE_PATH) gateway.lanes.handleUpgrade(request, socket, head);
    else if (path === PEERJS_SOCKET_PATH) peers.handleUpgrade(request, socket, head);
    else socket.destroy();
  });
  // Upgraded sockets (WebSockets) stay the server's connections: they too must end for it to close.
  const sockets = new Set<Socket>();
  app.server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const close = async () => {
    ownership?.stopping();
    clearInterval(ticker);
    retention.stop();
    peers.close();
    await gateway.close();
    await bus?.close();
    // Event streams are requests that never end by themselves: the server could not close under them.
    await eventLog.close().catch((err: unknown) => log.error({ err }, 'migration events not stored before stopping'));
    const closing = app.close();
    setTimeout(() => {
      for (const socket of sockets) socket.destroy();
    }, CLOSE_GRACE_MS).unref();
    await closing;
    // A store that cannot write must not keep the coordinator from stopping: hosts were never acked what it lost, and send it again.
    await scheduler.writes.durable().catch((err: unknown) => log.error({ err }, 'changes not stored before stopping'));
    // Only now are its jobs another's to take: what it wrote last is in the database for them.
    await ownership?.stop();
    await store.close();
  };
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    await close();
    throw error;
  }
  const address = app.server.address() as AddressInfo;
  const url = `${config.tls ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${address.port}`;

  return { url, firstAdminToken, close };
}
