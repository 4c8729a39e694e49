import path from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import pino from 'pino';
import { RELAY_LANE_PATH } from '@webpvm/vm-protocol';
import { TokenAuth } from './auth.ts';
import { type CoordinatorConfig, loadConfig } from './config.ts';
import { EventLog } from './event-log.ts';
import { HostGateway } from './host-gateway.ts';
import { buildApi } from './http-api.ts';
import { createMetrics, volunteerMetrics } from './metrics.ts';
import { PEERJS_SOCKET_PATH, mountPeerServer } from './peer-signalling.ts';
import { ProgramRegistry, programUrl } from './program-registry.ts';
import { Retention } from './retention.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import { PostgresStore } from './store/postgres-store.ts';
import { SqliteStore } from './store/sqlite-store.ts';

export { loadConfig, type CoordinatorConfig };

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
  const store = config.databaseUrl
    ? await PostgresStore.open(config.databaseUrl)
    : new SqliteStore(path.join(config.dataDir, 'webpvm.sqlite'), { synchronous: config.sqliteSynchronous });
  const auth = new TokenAuth(store);
  const firstAdminToken = await auth.bootstrap(config.adminToken);
  const metrics = createMetrics();
  const eventLog = await EventLog.open(store, log);
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
  });
  volunteerMetrics(metrics.registry, scheduler.hosts.volunteers);
  await scheduler.restore();
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
  });
  const app = buildApi({
    scheduler,
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
    clearInterval(ticker);
    retention.stop();
    peers.close();
    await gateway.close();
    // Event streams are requests that never end by themselves: the server could not close under them.
    await eventLog.close().catch((err: unknown) => log.error({ err }, 'migration events not stored before stopping'));
    const closing = app.close();
    setTimeout(() => {
      for (const socket of sockets) socket.destroy();
    }, CLOSE_GRACE_MS).unref();
    await closing;
    // A store that cannot write must not keep the coordinator from stopping: hosts were never acked what it lost, and send it again.
    await scheduler.writes.durable().catch((err: unknown) => log.error({ err }, 'changes not stored before stopping'));
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
