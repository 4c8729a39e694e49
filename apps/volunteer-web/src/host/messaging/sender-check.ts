import type { DataLink } from './data-link.ts';
import type { Route, RouteTable } from './route-table.ts';
import { type Clock, type Timer, systemClock } from '../clock.ts';

interface Held {
  link: DataLink;
  bytes: number;
  since: number;
  admit(): void;
  refuse(): void;
}

/** A frame waits at most this long for the coordinator to say where its task runs. */
const WAIT_MS = 10_000;
/** While frames wait, where their tasks run is asked again this often (an answer can be lost with a connection). */
const ASK_EVERY_MS = 1_000;
/** Frames waiting at once, and their bytes: past either, a frame is refused at once. */
const MAX_HELD = 4096;
const MAX_HELD_BYTES = 64 * 1024 * 1024;

/**
 * Who may speak for a task over a data channel: the host the coordinator names for it. Any page
 * that learns another's PeerJS id can open a channel to it, so a message, an acknowledgement or a
 * lane request in the name of task X that comes over the channel from peer P goes through only
 * when the coordinator's latest answer to `locate` puts X at P (route-table.ts). Otherwise it
 * waits, in order, while the coordinator is asked; an answer that names another peer or none
 * refuses it. An honest sender refused this way is one whose task just moved: it learns from the
 * bounce and re-sends through the relay, which delivers in order all the same.
 */
export class SenderCheck {
  #routes: Pick<RouteTable, 'runsAt' | 'ask'>;
  #clock: Clock;
  #now: () => number;
  #held = new Map<string, Held[]>();
  #count = 0;
  #bytes = 0;
  #timer: Timer | null = null;

  constructor(routes: Pick<RouteTable, 'runsAt' | 'ask'>, clock: Clock = systemClock, now: () => number = () => performance.now()) {
    this.#routes = routes;
    this.#clock = clock;
    this.#now = now;
  }

  /** A frame of `bytes` in the name of `tid` came over `link`: it is admitted now, later, or refused. */
  check(tid: string, link: DataLink, bytes: number, admit: () => void, refuse: () => void): void {
    if (this.#routes.runsAt(tid, link.remotePeerId)) {
      admit();
      return;
    }
    if (this.#count >= MAX_HELD || this.#bytes + bytes > MAX_HELD_BYTES) {
      refuse();
      return;
    }
    let held = this.#held.get(tid);
    if (!held) {
      held = [];
      this.#held.set(tid, held);
    }
    held.push({ link, bytes, since: this.#now(), admit, refuse });
    this.#count += 1;
    this.#bytes += bytes;
    this.#routes.ask(tid);
    this.#timer ??= this.#clock.setInterval(() => this.#tick(), ASK_EVERY_MS);
  }

  /** The coordinator answered `locate` (the route table has taken the answer in): frames waiting for these tasks are settled. */
  onRoutes(routes: readonly Route[]): void {
    for (const { tid, peerId } of routes) {
      const held = this.#take(tid);
      for (const frame of held) {
        if (frame.link.remotePeerId === peerId) frame.admit();
        else frame.refuse();
      }
    }
  }

  /** The channel closed: what waits from it goes with it (its sender re-sends what was not acknowledged). */
  linkBroken(link: DataLink): void {
    for (const [tid, held] of this.#held) {
      const kept = held.filter((frame) => frame.link !== link);
      if (kept.length === held.length) continue;
      this.#take(tid);
      if (kept.length === 0) continue;
      this.#held.set(tid, kept);
      this.#count += kept.length;
      this.#bytes += kept.reduce((n, frame) => n + frame.bytes, 0);
    }
  }

  stop(): void {
    this.#clock.clear(this.#timer);
    this.#timer = null;
  }

  #tick(): void {
    const now = this.#now();
    for (const [tid, held] of this.#held) {
      if (now - held[0]!.since < WAIT_MS) this.#routes.ask(tid);
      else for (const frame of this.#take(tid)) frame.refuse();
    }
    if (this.#held.size === 0) this.stop();
  }

  #take(tid: string): Held[] {
    const held = this.#held.get(tid) ?? [];
    this.#held.delete(tid);
    this.#count -= held.length;
    this.#bytes -= held.reduce((n, frame) => n + frame.bytes, 0);
    return held;
  }
}
