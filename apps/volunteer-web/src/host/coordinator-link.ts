import {
  PROTOCOL_VERSION,
  decodeCoordinatorMessage,
  encode,
  type CoordinatorMessage,
  type CoordinatorMessageOf,
  type HostMessage,
  type TaskRef,
} from '@webpvm/vm-protocol';
import { loadIdentity, saveIdentity, type HostIdentity } from './identity.ts';
import type { KeyValueStore } from './kv-store.ts';
import { type Clock, type Timer, systemClock } from './clock.ts';
import { CoordinatorFailover, type FailoverOptions } from './coordinator-failover.ts';

export type ConnectionState = 'connecting' | 'connected' | 'offline';

/** The part of a WebSocket the link uses, so tests can hand it a fake. */
export interface SocketLike {
  binaryType: BinaryType;
  /** Text is a JSON message; bytes are an envelope for the relay. */
  send(data: string | Uint8Array): void;
  close(): void;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
}

export interface LinkEvents {
  /** Identity stored and heartbeats started: pending results can be sent again. */
  welcome(message: CoordinatorMessageOf<'welcome'>): void;
  assign(message: CoordinatorMessageOf<'assign'>): void;
  cancel(message: CoordinatorMessageOf<'cancel'>): void;
  withdraw(message: CoordinatorMessageOf<'withdraw'>): void;
  ack(message: CoordinatorMessageOf<'ack'>): void;
  reply(message: CoordinatorMessageOf<'reply'>): void;
  routes(message: CoordinatorMessageOf<'routes'>): void;
  migrate(message: CoordinatorMessageOf<'migrate'>): void;
  peerGone(message: CoordinatorMessageOf<'peer-gone'>): void;
  destination(message: CoordinatorMessageOf<'destination'>): void;
  imageComing(message: CoordinatorMessageOf<'image-coming'>): void;
  sendImage(message: CoordinatorMessageOf<'send-image'>): void;
  lane(message: CoordinatorMessageOf<'lane'>): void;
  laneRefused(message: CoordinatorMessageOf<'lane-refused'>): void;
  covered(message: CoordinatorMessageOf<'covered'>): void;
  restarted(message: CoordinatorMessageOf<'restarted'>): void;
  reconnected(message: CoordinatorMessageOf<'reconnected'>): void;
  sendAgain(message: CoordinatorMessageOf<'send-again'>): void;
  checkpointDue(message: CoordinatorMessageOf<'checkpoint-due'>): void;
  keepImage(message: CoordinatorMessageOf<'keep-image'>): void;
  returnImage(message: CoordinatorMessageOf<'return-image'>): void;
  forgetImages(message: CoordinatorMessageOf<'forget-images'>): void;
  forgetLogs(message: CoordinatorMessageOf<'forget-logs'>): void;
  /** Envelope bytes the coordinator relays from another host (a binary frame). */
  relay(bytes: Uint8Array): void;
  stateChange(): void;
}

export interface LinkOptions {
  url: string;
  /** The slots offered now: 0 while the person at the machine uses it. */
  slots(): number;
  userAgent: string;
  /** The browser profile's volunteer key (volunteer-key.ts), the same in all its tabs. */
  volunteerKey: string;
  store: KeyValueStore;
  /** Tasks this page holds, reported in every `hello` so a reconnect does not lose them. */
  heldTasks(): TaskRef[];
  events: LinkEvents;
  createSocket?: (url: string) => SocketLike;
  /** Heartbeats and reconnects must keep time on a hidden page (clock.ts). */
  clock?: Clock;
  /** Where a page goes when its coordinator is gone for good (coordinator-failover.ts); without it, it waits for it. */
  failover?: Omit<FailoverOptions, 'clock' | 'reconnect'>;
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/** `ws://` or `wss://` on this page's own origin: the coordinator serves the page and the socket. */
export function coordinatorSocketUrl(location: { protocol: string; host: string }): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}

/**
 * The host's one WebSocket to the coordinator. It says hello on every (re)connect, keeps the
 * identity the coordinator issues, beats the heart and reconnects forever with backoff.
 * Messages are only sent after a `welcome`: before it the coordinator does not know who we are.
 */
export class CoordinatorLink {
  #options: LinkOptions;
  #createSocket: (url: string) => SocketLike;
  #clock: Clock;
  #socket: SocketLike | null = null;
  #identity: HostIdentity | null = null;
  #state: ConnectionState = 'connecting';
  #welcomed = false;
  #retryMs = FIRST_RETRY_MS;
  #retryTimer: Timer | null = null;
  #heartbeat: Timer | null = null;
  #stopped = false;
  #checkpointIntervalMs = 0;
  readonly #failover: CoordinatorFailover | null;

  readonly #handlers: { [T in CoordinatorMessage['type']]: (message: CoordinatorMessageOf<T>) => void } = {
    welcome: (m) => this.#onWelcome(m),
    assign: (m) => this.#options.events.assign(m),
    cancel: (m) => this.#options.events.cancel(m),
    withdraw: (m) => this.#options.events.withdraw(m),
    ack: (m) => this.#options.events.ack(m),
    reply: (m) => this.#options.events.reply(m),
    routes: (m) => this.#options.events.routes(m),
    migrate: (m) => this.#options.events.migrate(m),
    'peer-gone': (m) => this.#options.events.peerGone(m),
    destination: (m) => this.#options.events.destination(m),
    'image-coming': (m) => this.#options.events.imageComing(m),
    'send-image': (m) => this.#options.events.sendImage(m),
    lane: (m) => this.#options.events.lane(m),
    'lane-refused': (m) => this.#options.events.laneRefused(m),
    covered: (m) => this.#options.events.covered(m),
    restarted: (m) => this.#options.events.restarted(m),
    reconnected: (m) => this.#options.events.reconnected(m),
    'send-again': (m) => this.#options.events.sendAgain(m),
    'checkpoint-due': (m) => this.#options.events.checkpointDue(m),
    'keep-image': (m) => this.#options.events.keepImage(m),
    'return-image': (m) => this.#options.events.returnImage(m),
    'forget-images': (m) => this.#options.events.forgetImages(m),
    'forget-logs': (m) => this.#options.events.forgetLogs(m),
    cluster: (m) => this.#failover?.members(m.coordinators),
    error: (m) => console.warn(`webpvm coordinator: ${m.code} ${m.message} (about ${m.ref ?? 'an unreadable frame'})`),
  };

  constructor(options: LinkOptions) {
    this.#options = options;
    this.#createSocket = options.createSocket ?? ((url) => new WebSocket(url));
    this.#clock = options.clock ?? systemClock;
    this.#failover = options.failover ? new CoordinatorFailover({ ...options.failover, clock: this.#clock, reconnect: () => this.#reconnectNow() }) : null;
  }

  /** The cluster's other coordinators, as the last welcome or `cluster` message named them. */
  get otherCoordinators(): readonly string[] {
    return this.#failover?.others ?? [];
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get hostId(): string | null {
    return this.#identity?.hostId ?? null;
  }

  /** From the last `welcome`; 0 until one arrives. */
  get checkpointIntervalMs(): number {
    return this.#checkpointIntervalMs;
  }

  async start(): Promise<void> {
    this.#identity = await loadIdentity(this.#options.store);
    this.#options.events.stateChange();
    this.#connect();
  }

  stop(): void {
    this.#stopped = true;
    this.#failover?.connected();
    if (this.#retryTimer) this.#clock.clear(this.#retryTimer);
    this.#stopHeartbeat();
    this.#socket?.close();
  }

  /** False when not welcomed: the caller keeps anything that must survive (results, checkpoints). */
  send(message: HostMessage): boolean {
    return this.#sendData(encode(message));
  }

  /** Envelope bytes for the relay; false when not welcomed. */
  sendBinary(bytes: Uint8Array): boolean {
    return this.#sendData(bytes);
  }

  #sendData(data: string | Uint8Array): boolean {
    if (!this.#welcomed || !this.#socket) return false;
    try {
      this.#socket.send(data);
      return true;
    } catch {
      return false;
    }
  }

  #connect(): void {
    this.#retryTimer = null;
    if (this.#stopped) return;
    let socket: SocketLike;
    try {
      socket = this.#createSocket(this.#options.url);
    } catch {
      this.#onClose(null);
      return;
    }
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => this.#sendHello(socket);
    socket.onmessage = (event) => {
      if (socket !== this.#socket) return;
      if (typeof event.data === 'string') this.#onFrame(event.data);
      else if (event.data instanceof ArrayBuffer) this.#options.events.relay(new Uint8Array(event.data));
    };
    socket.onclose = () => this.#onClose(socket);
    socket.onerror = () => socket.close();
  }

  #reconnectNow(): void {
    if (this.#stopped || this.#socket || !this.#retryTimer) return;
    this.#clock.clear(this.#retryTimer);
    this.#connect();
  }

  #sendHello(socket: SocketLike): void {
    const hello: HostMessage = {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      identity: this.#identity,
      slots: this.#options.slots(),
      running: this.#options.heldTasks(),
      userAgent: this.#options.userAgent.slice(0, 512),
      volunteer: this.#options.volunteerKey,
    };
    socket.send(encode(hello));
  }

  #onFrame(text: string): void {
    const decoded = decodeCoordinatorMessage(text);
    if (!decoded.ok) {
      console.warn(`webpvm: ignored a coordinator frame: ${decoded.error.code} ${decoded.error.message}`);
      return;
    }
    const message = decoded.value;
    (this.#handlers[message.type] as (m: CoordinatorMessage) => void)(message);
  }

  #onWelcome(message: CoordinatorMessageOf<'welcome'>): void {
    if (message.protocol !== PROTOCOL_VERSION) {
      console.warn(`webpvm: coordinator speaks protocol ${message.protocol}, this page ${PROTOCOL_VERSION}`);
    }
    this.#identity = { hostId: message.hostId, secret: message.secret };
    this.#checkpointIntervalMs = message.checkpointIntervalMs;
    this.#welcomed = true;
    this.#failover?.members(message.coordinators);
    this.#failover?.connected();
    this.#retryMs = FIRST_RETRY_MS;
    this.#state = 'connected';
    this.#stopHeartbeat();
    this.#heartbeat = this.#clock.setInterval(() => this.send({ type: 'heartbeat' }), message.heartbeatMs);
    void saveIdentity(this.#options.store, this.#identity).catch((error: unknown) =>
      console.warn('webpvm: could not store the host identity', error),
    );
    this.#options.events.welcome(message);
    this.#options.events.stateChange();
  }

  #onClose(socket: SocketLike | null): void {
    if (socket && socket !== this.#socket) return;
    this.#socket = null;
    this.#welcomed = false;
    this.#stopHeartbeat();
    if (this.#stopped) return;
    this.#state = 'offline';
    this.#failover?.offline();
    this.#options.events.stateChange();
    this.#retryTimer = this.#clock.setTimeout(() => this.#connect(), this.#retryMs);
    this.#retryMs = Math.min(MAX_RETRY_MS, this.#retryMs * 2);
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat) this.#clock.clear(this.#heartbeat);
    this.#heartbeat = null;
  }
}
