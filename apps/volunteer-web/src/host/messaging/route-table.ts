import { LIMITS } from '@webpvm/vm-protocol';
import type { DataLink, DataLinks } from './data-link.ts';

export interface Route {
  tid: string;
  peerId: string | null;
}

export interface RouteTableOptions {
  /** Null with `?p2p=off`: no route is ever asked for. */
  links: DataLinks | null;
  /** Asks the coordinator where these tasks run (a `locate` frame). */
  locate(tids: string[]): void;
  now?: () => number;
}

/** A task asks where another runs at most this often. */
const LOCATE_AGAIN_MS = 1000;

/**
 * Where the receivers of this page's messages run, as the coordinator answered `locate`: the
 * data channel a message can take, once open. Asks are batched per turn and repeated at most
 * every LOCATE_AGAIN_MS per receiver; a route through a host that proved wrong is forgotten.
 */
export class RouteTable {
  #options: RouteTableOptions;
  #now: () => number;
  #routes = new Map<string, string>();
  #asked = new Map<string, number>();
  #toLocate = new Set<string>();

  constructor(options: RouteTableOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** The open channel to the host of `to`, or null; a known host with no open channel gets one started. */
  linkTo(to: string): DataLink | null {
    const links = this.#options.links;
    const peerId = this.#routes.get(to);
    if (!links || !peerId) return null;
    const link = links.open(peerId);
    if (!link) links.connect(peerId);
    return link;
  }

  /** Whether the coordinator's latest answer puts `tid` at that peer. */
  runsAt(tid: string, peerId: string): boolean {
    return this.#routes.get(tid) === peerId;
  }

  /** A message for `tid` went through the relay: ask where it runs, unless known or asked lately. */
  locate(tid: string): void {
    if (!this.#routes.has(tid)) this.ask(tid);
  }

  /** Asks where `tid` runs, known or not (a frame in its name came from another peer), unless asked lately. */
  ask(tid: string): void {
    if (!this.#options.links) return;
    const asked = this.#asked.get(tid);
    const now = this.#now();
    if (asked !== undefined && now - asked < LOCATE_AGAIN_MS) return;
    this.#asked.set(tid, now);
    if (this.#toLocate.size === 0) queueMicrotask(() => this.#flushLocate());
    this.#toLocate.add(tid);
  }

  /** The coordinator's answer to `locate`; a task not running anywhere has no route. */
  onRoutes(routes: Route[]): void {
    for (const { tid, peerId } of routes) {
      if (peerId === null) {
        this.#routes.delete(tid);
        continue;
      }
      this.#routes.set(tid, peerId);
      this.#options.links?.connect(peerId);
    }
  }

  /** The host `peerId` bounced a message for `tid`: it runs elsewhere now, to be asked again. */
  notAt(tid: string, peerId: string): void {
    if (this.#routes.get(tid) !== peerId) return;
    this.#routes.delete(tid);
    this.#asked.delete(tid);
  }

  /** The channel to `peerId` broke: its host may be gone, so where its tasks run is asked again. */
  peerLost(peerId: string): void {
    for (const [tid, routed] of this.#routes) {
      if (routed !== peerId) continue;
      this.#routes.delete(tid);
      this.#asked.delete(tid);
    }
  }

  #flushLocate(): void {
    const tids = [...this.#toLocate];
    this.#toLocate.clear();
    for (let i = 0; i < tids.length; i += LIMITS.itemsPerBatch) this.#options.locate(tids.slice(i, i + LIMITS.itemsPerBatch));
  }
}
