import type { IncomingMessage } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  type CoordinatorMessage,
  type ErrorBody,
  type HostMessage,
  type HostMessageOf,
  LIMITS,
  PROTOCOL_VERSION,
  decodeEnvelope,
  decodeHostMessage,
  encode,
  parseTid,
} from '@webpvm/vm-protocol';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { hashSecret, newSecret, volunteerIdOf } from './auth.ts';
import { ByteBudget } from './byte-budget.ts';
import type { ClusterMembers } from './cluster-members.ts';
import { clientAddress } from './client-address.ts';
import { frameBytes, frameLength } from './frame-bytes.ts';
import { limitFrames } from './frame-limit.ts';
import type { Metrics } from './metrics.ts';
import { RelayLanes } from './relay-lanes.ts';
import type { HostLink } from './scheduler/ports.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import type { Store } from './store/store.ts';

export interface GatewayOptions {
  scheduler: Scheduler;
  store: Store;
  log: Logger;
  metrics: Metrics;
  heartbeatMs: number;
  hostTimeoutMs: number;
  checkpointIntervalMs: number;
  iceServers: Record<string, unknown>[];
  iceTransportPolicy: 'all' | 'relay';
  /** Host connections one network address may hold at once. */
  hostsPerAddress: number;
  /** Behind a proxy: a host's address is the one the proxy saw (client-address.ts). */
  trustProxy: boolean;
  /** Bytes one host may send per second, on its socket and its relay lanes together (byte-budget.ts). */
  hostBytesPerSecond: number;
  /** Bytes the hosts of one job may relay per second, all together: one job cannot take every other's relay. */
  jobBytesPerSecond: number;
  /** Where pages fail over to: told in every welcome, and to every page whenever it changes. */
  members: ClusterMembers;
}

/** Jobs whose relay budgets are kept: the least recently used goes (and starts afresh if it comes back). */
const JOB_BUDGETS = 10_000;

/** Binary frames carry task messages (LIMITS.messageBytes) with their envelope. */
const HOST_FRAME_BYTES = LIMITS.messageBytes + 4 * 1024 * 1024;
/** The largest frame before `hello` is through: a hello naming LIMITS.heldPerHost tasks fits. */
const FRAME_BYTES_BEFORE_HELLO = 128 * 1024;
/** Log lines (`ctx.log`) a host may send per second; the rest are dropped and counted. */
const LOG_LINES_PER_SECOND = 100;
/** Frames a host may send per second before it is disconnected (it reconnects and resends). */
const FRAMES_PER_SECOND = 2_000;
/** Malformed frames tolerated on one connection before it is closed. */
const BAD_FRAMES_TOLERATED = 10;

type Handlers = { [T in HostMessage['type']]: (conn: HostConnection, message: HostMessageOf<T>) => Promise<void> | void };

class HostConnection implements HostLink {
  hostId: string | null = null;
  /** Set as `hello` arrives, before its identity is looked up: a second `hello` meanwhile is refused, not a second host. */
  greeted = false;
  /** Issued with the welcome; the PeerServer accepts only ids of connected hosts. */
  peerId: string | null = null;
  /** The PeerServer takes `peerId` only with this: learning a peer id (from `locate`) is not enough to take it up. */
  peerToken: string | null = null;
  /**
   * On the monotonic clock, as `windowStart` is: a step of the wall clock must not time out every
   * host at once, nor keep a silent one.
   */
  lastSeen = performance.now();
  badFrames = 0;
  windowStart = performance.now();
  framesInWindow = 0;
  logLinesInWindow = 0;
  readonly budget: ByteBudget;
  #holdOff: NodeJS.Timeout | null = null;

  constructor(
    readonly socket: WebSocket,
    private readonly metrics: Metrics,
    readonly address: string,
    bytesPerSecond: number,
  ) {
    this.budget = new ByteBudget(bytesPerSecond, bytesPerSecond);
  }

  /** Spends a frame's bytes: past the budget, the socket is not read until it refills. */
  spend(bytes: number): void {
    this.holdOff(this.budget.spend(bytes));
  }

  /** The socket is not read for `ms` (the host, or the job it relays for, is past its bytes per second). */
  holdOff(ms: number): void {
    if (ms === 0) return;
    this.metrics.throttled.inc();
    if (this.#holdOff) clearTimeout(this.#holdOff);
    this.socket.pause();
    this.#holdOff = setTimeout(() => {
      this.#holdOff = null;
      this.socket.resume();
    }, ms);
    this.#holdOff.unref();
  }

  send(message: CoordinatorMessage): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.metrics.framesOut.inc({ type: message.type });
    this.socket.send(encode(message));
  }

  sendBinary(bytes: Uint8Array): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.metrics.framesOut.inc({ type: 'envelope' });
    this.socket.send(bytes, { binary: true });
  }

  sendError(error: ErrorBody, ref: string | null): void {
    this.send({ type: 'error', code: error.code, message: error.message, ref });
  }
}

/** The host WebSocket `/ws`: parses every frame with vm-protocol and hands it to the scheduler. */
export class HostGateway {
  // Binary frames carry task messages, up to LIMITS.messageBytes; JSON frames are capped at
  // LIMITS.frameBytes by decodeHostMessage.
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: HOST_FRAME_BYTES });
  private readonly connections = new Set<HostConnection>();
  /** Per job, in the order last used: what its hosts relay per second. */
  private readonly jobBudgets = new Map<string, ByteBudget>();
  private readonly sweeper: NodeJS.Timeout;
  /** Workers' sockets at RELAY_LANE_PATH, which hosts ask for over this gateway. */
  readonly lanes: RelayLanes;
  /** Told in every welcome: pages learn from a new one that this process restarted. */
  private readonly boot = randomBytes(8).toString('hex');

  constructor(private readonly opts: GatewayOptions) {
    this.lanes = new RelayLanes({ endOf: (hostId, from, to) => opts.scheduler.relay.relayLaneEnd(hostId, from, to), log: opts.log, metrics: opts.metrics });
    this.sweeper = setInterval(() => this.sweep(), opts.heartbeatMs);
    this.sweeper.unref();
    opts.members.onChange((coordinators) => {
      for (const conn of this.connections) if (conn.hostId !== null) conn.send({ type: 'cluster', coordinators: [...coordinators] });
    });
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const address = clientAddress(request, this.opts.trustProxy);
    if ([...this.connections].filter((c) => c.address === address).length >= this.opts.hostsPerAddress) {
      this.opts.metrics.refused.inc({ why: 'connections per address' });
      socket.end(`HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\n\r\nmore than ${this.opts.hostsPerAddress} host connections from this address\n`);
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, address));
  }

  /** Whether a PeerJS client may take this id: only the host connected here that was issued it, with its token. */
  isIssuedPeerId(peerId: string, token: string): boolean {
    return [...this.connections].some((c) => c.peerId === peerId && c.peerToken !== null && safeEqual(c.peerToken, token));
  }

  get connectedHosts(): number {
    return [...this.connections].filter((c) => c.hostId !== null).length;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.lanes.close();
    for (const conn of this.connections) conn.socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private accept(socket: WebSocket, address: string): void {
    const conn = new HostConnection(socket, this.opts.metrics, address, this.opts.hostBytesPerSecond);
    if (!limitFrames(socket, FRAME_BYTES_BEFORE_HELLO)) this.opts.log.warn('ws changed: frames before hello are not limited');
    this.connections.add(conn);
    socket.on('message', (data, isBinary) => void this.receive(conn, data, isBinary));
    socket.on('close', () => {
      this.connections.delete(conn);
      this.lanes.hostGone(conn);
      if (conn.hostId) {
        this.opts.scheduler.hosts.detach(conn.hostId, conn);
        this.opts.log.info({ host: conn.hostId }, 'host disconnected');
      }
    });
    socket.on('error', (err) => this.opts.log.warn({ err, host: conn.hostId }, 'host socket error'));
  }

  private async receive(conn: HostConnection, data: RawData, isBinary: boolean): Promise<void> {
    const now = performance.now();
    conn.lastSeen = now;
    if (now - conn.windowStart >= 1_000) {
      conn.windowStart = now;
      conn.framesInWindow = 0;
      conn.logLinesInWindow = 0;
    }
    if (++conn.framesInWindow > FRAMES_PER_SECOND) {
      conn.sendError({ code: 'E_RATE_LIMITED', message: `more than ${FRAMES_PER_SECOND} frames per second` }, null);
      conn.socket.close(1008, 'rate limited');
      return;
    }
    conn.spend(frameLength(data));
    if (isBinary) {
      this.relay(conn, data);
      return;
    }
    const decoded = decodeHostMessage(frameBytes(data));
    if (!decoded.ok) {
      this.opts.metrics.badFrames.inc();
      conn.sendError(decoded.error, decoded.error.ref);
      if (++conn.badFrames > BAD_FRAMES_TOLERATED) conn.socket.close(1008, 'too many malformed frames');
      return;
    }
    const message = decoded.value;
    this.opts.metrics.framesIn.inc({ type: message.type });
    if (message.type !== 'hello' && conn.hostId === null) {
      conn.sendError({ code: 'E_BAD_FRAME', message: 'send hello first' }, message.type);
      return;
    }
    if (conn.hostId) this.opts.scheduler.hosts.seen(conn.hostId);
    try {
      await (this.handlers[message.type] as (c: HostConnection, m: HostMessage) => Promise<void> | void)(conn, message);
    } catch (err) {
      this.opts.log.error({ err, host: conn.hostId, type: message.type }, 'host message handler failed');
      conn.sendError({ code: 'E_INTERNAL', message: 'the coordinator could not handle this message' }, message.type);
    }
  }

  /** A binary frame is a task message (or an ack) for a task elsewhere: relay it. */
  private relay(conn: HostConnection, data: RawData): void {
    const bytes = frameBytes(data);
    const decoded = decodeEnvelope(bytes);
    if (!decoded.ok) {
      this.opts.metrics.badFrames.inc();
      conn.sendError(decoded.error, 'envelope');
      if (++conn.badFrames > BAD_FRAMES_TOLERATED) conn.socket.close(1008, 'too many malformed frames');
      return;
    }
    if (conn.hostId === null) {
      conn.sendError({ code: 'E_BAD_FRAME', message: 'send hello first' }, 'envelope');
      return;
    }
    const h = decoded.value.header;
    if (h.type === 'part') {
      this.opts.metrics.framesIn.inc({ type: 'image-part' });
      const refused = this.opts.scheduler.migrations.imagePart(conn.hostId, h, decoded.value.buffers[0]!, bytes);
      if (refused) conn.sendError(refused, 'part');
      return;
    }
    this.opts.metrics.framesIn.inc({ type: 'envelope' });
    const [from, to, destination] = h.type === 'msg' ? [h.from, h.to, h.to] : [h.of, h.by, h.of];
    const refused = this.opts.scheduler.relay.relay(conn.hostId, h.type, from, to, destination, bytes);
    if (refused) conn.sendError(refused, 'envelope');
    else conn.holdOff(this.jobBudget(parseTid(from).jobId).spend(bytes.byteLength));
  }

  /** The relay budget of a job, its hosts' sockets and relay lanes together. */
  private jobBudget(jobId: string): ByteBudget {
    let budget = this.jobBudgets.get(jobId);
    if (budget) this.jobBudgets.delete(jobId);
    else budget = new ByteBudget(this.opts.jobBytesPerSecond, this.opts.jobBytesPerSecond);
    this.jobBudgets.set(jobId, budget);
    if (this.jobBudgets.size > JOB_BUDGETS) this.jobBudgets.delete(this.jobBudgets.keys().next().value!);
    return budget;
  }

  private readonly handlers: Handlers = {
    hello: async (conn, m) => {
      if (m.protocol !== PROTOCOL_VERSION) {
        conn.sendError({ code: 'E_PROTOCOL_VERSION', message: `this coordinator speaks protocol ${PROTOCOL_VERSION}, not ${m.protocol}` }, 'hello');
        conn.socket.close(1008, 'protocol version');
        return;
      }
      if (conn.greeted) {
        conn.sendError({ code: 'E_BAD_FRAME', message: 'hello was already received' }, 'hello');
        return;
      }
      conn.greeted = true;
      const identity = await this.identify(m.identity);
      if (conn.socket.readyState !== conn.socket.OPEN) return;
      const volunteerId = volunteerIdOf(m.volunteer);
      conn.hostId = identity.hostId;
      limitFrames(conn.socket, HOST_FRAME_BYTES);
      conn.peerId = `${identity.hostId}-${randomBytes(6).toString('hex')}`;
      conn.peerToken = randomBytes(16).toString('hex');
      for (const other of this.connections) {
        if (other !== conn && other.hostId === identity.hostId) other.socket.close(4000, 'replaced by a newer connection');
      }
      this.opts.scheduler.hosts.attach(
        {
          hostId: identity.hostId,
          secretHash: hashSecret(identity.secret),
          createdAt: identity.createdAt,
          userAgent: m.userAgent,
          peerId: conn.peerId,
          volunteerId,
          address: conn.address,
        },
        conn,
        m.slots,
        identity.known ? m.running : [],
      );
      conn.send({
        type: 'welcome',
        protocol: PROTOCOL_VERSION,
        hostId: identity.hostId,
        secret: identity.secret,
        volunteerId,
        heartbeatMs: this.opts.heartbeatMs,
        checkpointIntervalMs: this.opts.checkpointIntervalMs,
        peerId: conn.peerId,
        peerToken: conn.peerToken,
        boot: this.boot,
        coordinators: [...this.opts.members.urls],
        iceServers: this.opts.iceServers,
        iceTransportPolicy: this.opts.iceTransportPolicy,
      });
      this.opts.log.info({ host: identity.hostId, volunteer: volunteerId, slots: m.slots, known: identity.known }, 'host connected');
    },
    heartbeat: () => {},
    capacity: (conn, m) => this.opts.scheduler.hosts.setSlots(conn.hostId!, m.slots),
    progress: (conn, m) => this.opts.scheduler.reports.progress(conn.hostId!, m.items),
    checkpoint: (conn, m) => {
      const refused = this.opts.scheduler.reports.checkpoint(conn.hostId!, m.tid, m.attempt, m.checkpoint);
      if (refused) conn.sendError(refused, 'checkpoint');
    },
    'checkpoint-image': (conn, m) => {
      const refused = this.opts.scheduler.recovery.checkpointImage(conn.hostId!, m);
      if (refused) conn.sendError(refused, 'checkpoint-image');
    },
    'log-full': (conn, m) => this.opts.scheduler.recovery.logFull(conn.hostId!, m),
    results: (conn, m) => {
      for (const refused of this.opts.scheduler.reports.outcomes(conn.hostId!, m.items)) conn.sendError(refused, 'results');
    },
    log: (conn, m) => {
      if (!this.opts.scheduler.jobs.runningOn(conn.hostId!, m.tid, m.attempt)) return this.opts.metrics.refused.inc({ why: 'log line for a task not the host\'s' });
      if (++conn.logLinesInWindow > LOG_LINES_PER_SECOND) return this.opts.metrics.refused.inc({ why: 'log lines per second' });
      this.opts.log.info({ host: conn.hostId, tid: m.tid, attempt: m.attempt }, m.line);
    },
    request: (conn, m) => {
      const outcome = this.opts.scheduler.vm.request(conn.hostId!, m.tid, m.attempt, m.requestId, m.op);
      if (outcome !== 'later') this.opts.scheduler.vm.answered(() => conn.send({ type: 'reply', tid: m.tid, requestId: m.requestId, ...outcome }));
    },
    locate: (conn, m) => conn.send({ type: 'routes', routes: this.opts.scheduler.relay.locate(m.tids, conn.hostId!) }),
    migrating: (conn, m) => this.opts.scheduler.migrations.migrating(conn.hostId!, m.tasks, m.reason),
    migrated: (conn, m) => {
      const refused = this.opts.scheduler.migrations.migrated(conn.hostId!, m);
      if (refused) conn.sendError(refused, 'migrated');
    },
    resumed: (conn, m) => this.opts.scheduler.migrations.resumed(conn.hostId!, m.tid, m.attempt),
    'image-missing': (conn, m) => this.opts.scheduler.migrations.imageMissing(conn.hostId!, m.tid, m.attempt),
    refill: (conn, m) => this.opts.scheduler.recovery.refill(conn.hostId!, m),
    'lane-open': (conn, m) => this.lanes.request(conn.hostId!, conn, m.from, m.to, [conn.budget, this.jobBudget(parseTid(m.from).jobId)]),
    'lane-declined': (conn, m) => this.lanes.declined(conn, m.token),
    withdrawn: (conn, m) => this.opts.scheduler.reports.withdrawn(conn.hostId!, m.tasks),
    'image-kept': (conn, m) => this.opts.scheduler.kept.stored(conn.hostId!, m),
    'image-returned': (conn, m) => {
      const refused = this.opts.scheduler.kept.returned(conn.hostId!, m);
      if (refused) conn.sendError(refused, 'image-returned');
    },
    'images-kept': (conn, m) => this.opts.scheduler.kept.reconcile(conn.hostId!, m.tids),
    'logs-kept': (conn, m) => {
      const forget = this.opts.scheduler.recovery.logsKept(conn.hostId!, m.tids);
      if (forget) conn.send(forget);
    },
  };

  /** A known host keeps its id; an unknown id or a wrong secret gets a fresh identity, never another host's. */
  private async identify(
    claimed: { hostId: string; secret: string } | null,
  ): Promise<{ hostId: string; secret: string; createdAt: number; known: boolean }> {
    if (claimed) {
      const stored = await this.opts.store.getHost(claimed.hostId);
      const fromScheduler = this.opts.scheduler.hosts.secretHashOf(claimed.hostId);
      const expected = stored?.secretHash ?? fromScheduler;
      if (expected && safeEqual(expected, hashSecret(claimed.secret))) {
        return { ...claimed, createdAt: stored?.createdAt ?? Date.now(), known: true };
      }
    }
    return { hostId: `h${randomBytes(6).toString('hex')}`, secret: newSecret('hs_'), createdAt: Date.now(), known: false };
  }

  private sweep(): void {
    const limit = performance.now() - this.opts.hostTimeoutMs;
    for (const conn of this.connections) {
      if (conn.lastSeen < limit) {
        this.opts.log.warn({ host: conn.hostId }, 'host timed out');
        conn.socket.terminate();
      }
    }
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
