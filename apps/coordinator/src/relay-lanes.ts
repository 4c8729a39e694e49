import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type ErrorBody, LANE_MESSAGE_BYTES, LANE_TOKEN_CHARS, LanePieceCheck, MAX_ENVELOPE_BYTES, decodeEnvelope, isLanePiece } from '@webpvm/vm-protocol';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { ByteBudget } from './byte-budget.ts';
import { frameBytes } from './frame-bytes.ts';
import type { Metrics } from './metrics.ts';
import type { HostLink } from './scheduler/ports.ts';

export interface RelayLanesOptions {
  /** The host at the receiving end of a lane from `from` (run by `hostId`) to `to`, or why there is none. */
  endOf(hostId: string, from: string, to: string): { hostId: string; link: HostLink } | ErrorBody;
  log: Logger;
  metrics?: Pick<Metrics, 'laneFrames' | 'lanesOpen' | 'throttled'>;
  maxLanesPerHost?: number;
  connectMs?: number;
}

interface Lane {
  from: string;
  to: string;
  /** The connections of the hosts at either end: a host that reconnects keeps no lane of the old one. */
  hosts: { out: HostLink; in: HostLink };
  tokens: { out: string; in: string };
  sockets: { out: WebSocket | null; in: WebSocket | null };
  /** Bytes passed to the receiving socket and not written out yet. */
  inFlight: number;
  /** Where the envelope whose pieces are under way stands. */
  pieces: LanePieceCheck;
  /** The sending host's bytes per second, shared with its socket, and its job's: past either, the sender's end is not read for a while. */
  budgets: readonly ByteBudget[];
  holdOff: NodeJS.Timeout | null;
  expiry: NodeJS.Timeout;
  closed: boolean;
}

type End = 'out' | 'in';

/** Lanes one host may be an end of: a page asks for at most 64 of its own. */
const MAX_LANES_PER_HOST = 256;
/** Both workers connect within this long, or the lane closes. */
const CONNECT_MS = 10_000;
/** The sender's socket is no longer read while this much waits to go out to the receiver's. */
const HIGH_WATER = 4 * 1024 * 1024;
const LOW_WATER = 1024 * 1024;

/**
 * Relay lanes (vm-protocol lane.ts): issues both ends' tokens, accepts the workers' sockets at
 * RELAY_LANE_PATH, and pipes the sender's envelopes to the receiver, checking that each is a
 * message of the lane's pair (or a piece of one). Frames are not queued here: the receiver's
 * backlog pauses the sender.
 */
export class RelayLanes {
  readonly #options: RelayLanesOptions;
  readonly #byToken = new Map<string, { lane: Lane; end: End }>();
  readonly #byHost = new Map<HostLink, Set<Lane>>();
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: LANE_MESSAGE_BYTES });

  constructor(options: RelayLanesOptions) {
    this.#options = options;
  }

  get open(): number {
    return this.#byToken.size / 2;
  }

  /**
   * Host `hostId` asks for a lane from its task `from` to `to`: both hosts get their end, or it a
   * refusal. What the sender writes on it is spent from `budgets`: the host's own and its job's.
   */
  request(hostId: string, link: HostLink, from: string, to: string, budgets: readonly ByteBudget[] = []): void {
    const end = this.#options.endOf(hostId, from, to);
    const max = this.#options.maxLanesPerHost ?? MAX_LANES_PER_HOST;
    if ('code' in end || this.#countOf(link) >= max || this.#countOf(end.link) >= max) {
      link.send({ type: 'lane-refused', from, to });
      return;
    }
    const lane: Lane = {
      from,
      to,
      hosts: { out: link, in: end.link },
      tokens: { out: newToken(), in: newToken() },
      sockets: { out: null, in: null },
      inFlight: 0,
      pieces: new LanePieceCheck({ from, to }, MAX_ENVELOPE_BYTES),
      budgets,
      holdOff: null,
      expiry: setTimeout(() => this.#close(lane, 'not connected in time'), this.#options.connectMs ?? CONNECT_MS),
      closed: false,
    };
    lane.expiry.unref();
    for (const e of ['out', 'in'] as const) {
      this.#byToken.set(lane.tokens[e], { lane, end: e });
      const lanes = this.#byHost.get(lane.hosts[e]) ?? new Set();
      lanes.add(lane);
      this.#byHost.set(lane.hosts[e], lanes);
    }
    this.#options.metrics?.lanesOpen.inc();
    end.link.send({ type: 'lane', end: 'in', from, to, token: lane.tokens.in });
    link.send({ type: 'lane', end: 'out', from, to, token: lane.tokens.out });
  }

  /** The receiving host (`link`) has no task for the end it was given. */
  declined(link: HostLink, token: string): void {
    const found = this.#byToken.get(token);
    if (found && found.lane.hosts[found.end] === link) this.#close(found.lane, 'declined');
  }

  /** A host's connection closed: its lanes, both ways, are gone. */
  hostGone(link: HostLink): void {
    for (const lane of this.#byHost.get(link) ?? []) this.#close(lane, 'host disconnected');
  }

  /** A worker opens its end; a token that is unknown or used is refused before the upgrade. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const token = new URL(request.url ?? '', 'http://lane').searchParams.get('token') ?? '';
    const found = token.length === LANE_TOKEN_CHARS ? this.#byToken.get(token) : undefined;
    if (!found || found.lane.sockets[found.end] !== null || found.lane.closed) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => this.#attach(found.lane, found.end, ws));
  }

  close(): void {
    for (const { lane } of [...this.#byToken.values()]) this.#close(lane, 'coordinator stopping');
    this.#wss.close();
  }

  #attach(lane: Lane, end: End, socket: WebSocket): void {
    if (lane.closed || lane.sockets[end] !== null) {
      socket.close(1008, 'lane closed');
      return;
    }
    lane.sockets[end] = socket;
    socket.on('close', () => this.#close(lane, `${end} end closed`));
    socket.on('error', (err) => this.#options.log.debug({ err, from: lane.from, to: lane.to }, 'lane socket error'));
    if (end === 'out') {
      socket.on('message', (data, isBinary) => this.#pipe(lane, data, isBinary));
      // Until the receiver's worker connects, what the sender writes waits in its own socket.
      if (!lane.sockets.in) socket.pause();
    } else {
      socket.on('message', () => this.#close(lane, 'the receiving end wrote'));
      this.#resumeIfClear(lane);
    }
    if (lane.sockets.out && lane.sockets.in) clearTimeout(lane.expiry);
  }

  #pipe(lane: Lane, data: RawData, isBinary: boolean): void {
    const receiver = lane.sockets.in;
    if (!receiver || lane.closed) return;
    const bytes = frameBytes(data);
    if (!isBinary || !this.#fits(lane, bytes)) {
      this.#options.log.warn({ from: lane.from, to: lane.to }, 'lane closed: a frame that is not a message of its pair');
      this.#close(lane, 'not a message of this lane');
      return;
    }
    lane.inFlight += bytes.byteLength;
    this.#options.metrics?.laneFrames.inc();
    receiver.send(bytes, { binary: true }, () => {
      lane.inFlight -= bytes.byteLength;
      this.#resumeIfClear(lane);
    });
    if (lane.inFlight > HIGH_WATER) lane.sockets.out!.pause();
    const wait = Math.max(0, ...lane.budgets.map((budget) => budget.spend(bytes.byteLength)));
    if (wait > 0) this.#holdOff(lane, wait);
  }

  /** A frame the lane may pipe: a message of its pair, whole or as the next of its pieces. */
  #fits(lane: Lane, bytes: Uint8Array): boolean {
    if (isLanePiece(bytes)) return lane.pieces.piece(bytes);
    if (!lane.pieces.between) return false;
    const decoded = decodeEnvelope(bytes);
    const header = decoded.ok ? decoded.value.header : null;
    return header?.type === 'msg' && header.from === lane.from && header.to === lane.to && header.seq >= 1;
  }

  /** The sending host or its job is past its bytes per second: the sender's end is not read for `ms`. */
  #holdOff(lane: Lane, ms: number): void {
    this.#options.metrics?.throttled.inc();
    if (lane.holdOff) clearTimeout(lane.holdOff);
    lane.sockets.out?.pause();
    lane.holdOff = setTimeout(() => {
      lane.holdOff = null;
      this.#resumeIfClear(lane);
    }, ms);
    lane.holdOff.unref();
  }

  /** The sender's end is read again once neither the receiver's backlog nor the host's budget holds it. */
  #resumeIfClear(lane: Lane): void {
    if (!lane.closed && lane.holdOff === null && lane.inFlight <= LOW_WATER && lane.sockets.out?.isPaused) lane.sockets.out.resume();
  }

  #close(lane: Lane, why: string): void {
    if (lane.closed) return;
    lane.closed = true;
    clearTimeout(lane.expiry);
    if (lane.holdOff) clearTimeout(lane.holdOff);
    this.#options.metrics?.lanesOpen.dec();
    for (const end of ['out', 'in'] as const) {
      this.#byToken.delete(lane.tokens[end]);
      this.#byHost.get(lane.hosts[end])?.delete(lane);
      if (this.#byHost.get(lane.hosts[end])?.size === 0) this.#byHost.delete(lane.hosts[end]);
      // A paused socket would not read the other side's close frame: the handshake would hang.
      lane.sockets[end]?.resume();
      lane.sockets[end]?.close(1000, why);
    }
  }

  #countOf(link: HostLink): number {
    return this.#byHost.get(link)?.size ?? 0;
  }
}

function newToken(): string {
  return randomBytes(LANE_TOKEN_CHARS / 2).toString('hex');
}
