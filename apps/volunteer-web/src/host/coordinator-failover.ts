import type { Clock, Timer } from './clock.ts';

/**
 * How long the page's own coordinator may stay out of reach before the page tries the others: a
 * coordinator restarted (an upgrade) is back within seconds, and its jobs go to another one within
 * a lease (10 s by default) only if it is not.
 */
export const FAILOVER_AFTER_MS = 10_000;
/**
 * Up to this much more, drawn per page: the tabs of a dead coordinator, all cut off at once, do
 * not all load themselves from the survivors in the same second.
 */
export const FAILOVER_SPREAD_MS = 5_000;
/** Between two rounds of tries while no other coordinator answers either. */
export const FAILOVER_RETRY_MS = 5_000;
/** A coordinator whose socket has not opened by then counts as out of reach. */
export const PROBE_TIMEOUT_MS = 3_000;

export interface FailoverOptions {
  /** This page's origin: the coordinator it came from, never one to move to. */
  origin: string;
  clock: Clock;
  /** Whether a coordinator's host socket opens: the page moves only to one that answers. */
  reachable(url: string): Promise<boolean>;
  /** Loads this page from another coordinator: it starts there afresh, as a new tab would. */
  move(url: string): void;
  /** Its own coordinator answers again (between two reconnects of the backoff): reconnect now. */
  reconnect(): void;
  random?: () => number;
}

/**
 * A volunteer page whose coordinator died moves to another of its cluster (docs/cluster.md,
 * "Failover"). The page learns the cluster's public URLs in every welcome and `cluster` message.
 * Once its own has been out of reach for FAILOVER_AFTER_MS and a spread, it tries its own once
 * more (one that restarted may be back between two reconnects), then the others in a random
 * order, so that a dead coordinator's tabs spread over the survivors, and loads itself from the
 * first that answers. It does not carry its tasks along: their jobs pass to another coordinator,
 * which restarts them from what it kept, as for any tab that died.
 */
export class CoordinatorFailover {
  readonly #opts: FailoverOptions;
  #others: string[] = [];
  #offline = false;
  #timer: Timer | null = null;
  #moved = false;
  readonly #random: () => number;

  constructor(opts: FailoverOptions) {
    this.#opts = opts;
    this.#random = opts.random ?? Math.random;
  }

  get others(): readonly string[] {
    return this.#others;
  }

  members(urls: readonly string[]): void {
    this.#others = urls.filter((url) => url !== this.#opts.origin);
  }

  connected(): void {
    this.#offline = false;
    this.#opts.clock.clear(this.#timer);
    this.#timer = null;
  }

  offline(): void {
    if (this.#offline) return;
    this.#offline = true;
    // A coordinator alone (or one that told of no other) is waited for, however long it takes.
    if (this.#others.length) this.#wait(FAILOVER_AFTER_MS + Math.floor(this.#random() * FAILOVER_SPREAD_MS));
  }

  #wait(ms: number): void {
    this.#opts.clock.clear(this.#timer);
    this.#timer = this.#opts.clock.setTimeout(() => void this.#tryOthers(), ms);
  }

  async #tryOthers(): Promise<void> {
    this.#timer = null;
    if (await this.#opts.reachable(this.#opts.origin)) {
      if (!this.#offline) return;
      this.#opts.reconnect();
      this.#wait(FAILOVER_RETRY_MS);
      return;
    }
    for (const url of shuffled(this.#others, this.#random)) {
      const answers = await this.#opts.reachable(url);
      if (!this.#offline || this.#moved) return;
      if (answers) {
        this.#moved = true;
        this.#opts.move(url);
        return;
      }
    }
    if (this.#offline) this.#wait(FAILOVER_RETRY_MS);
  }
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Whether a coordinator's host socket (`coordinatorSocketUrl`) opens within PROBE_TIMEOUT_MS; closed at once either way. */
export function socketOpens(socketUrl: string, clock: Clock, createSocket: (url: string) => WebSocket = (u) => new WebSocket(u)): Promise<boolean> {
  return new Promise((resolve) => {
    let socket: WebSocket;
    try {
      socket = createSocket(socketUrl);
    } catch {
      resolve(false);
      return;
    }
    const done = (answered: boolean) => {
      clock.clear(timer);
      socket.onopen = socket.onerror = socket.onclose = null;
      socket.close();
      resolve(answered);
    };
    const timer = clock.setTimeout(() => done(false), PROBE_TIMEOUT_MS);
    socket.onopen = () => done(true);
    socket.onerror = () => done(false);
    socket.onclose = () => done(false);
  });
}
