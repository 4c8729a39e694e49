import { type Clock, type Timer, systemClock } from './clock.ts';

/**
 * The coordinator takes at most 2,000 frames a second from a host and drops the connection past
 * it (host-gateway.ts): a sender log sent again at once — thousands of small messages for a
 * receiver that never checkpointed — would cost the host its connection and the frames on it.
 * Those go this many a tick, leaving room for everything else the host sends.
 */
const FRAMES_PER_TICK = 100;
const TICK_MS = 125;

/** Relay frames sent at a pace (sender logs sent again after a crash, recovery.ts in the coordinator). */
export class PacedRelay {
  #send: (bytes: Uint8Array) => void;
  #clock: Clock;
  #queue: Uint8Array[] = [];
  #timer: Timer | null = null;

  constructor(send: (bytes: Uint8Array) => void, clock: Clock = systemClock) {
    this.#send = send;
    this.#clock = clock;
  }

  get waiting(): number {
    return this.#queue.length;
  }

  send(frames: readonly Uint8Array[]): void {
    this.#queue.push(...frames);
    if (this.#timer === null) this.#tick();
  }

  stop(): void {
    this.#clock.clear(this.#timer);
    this.#timer = null;
    this.#queue = [];
  }

  #tick(): void {
    this.#timer = null;
    for (const frame of this.#queue.splice(0, FRAMES_PER_TICK)) this.#send(frame);
    if (this.#queue.length) this.#timer = this.#clock.setTimeout(() => this.#tick(), TICK_MS);
  }
}
