import type { SealedMessage } from '@webpvm/vm-protocol';
import { type Clock, type Timer, systemClock } from './clock.ts';

/**
 * The coordinator takes at most 2,000 frames a second from a host and drops the connection past
 * it (host-gateway.ts): a sender log sent again at once — thousands of small messages for a
 * receiver that never checkpointed — would cost the host its connection and the frames on it.
 * Those go this many a tick, leaving room for everything else the host sends.
 */
const FRAMES_PER_TICK = 100;
const TICK_MS = 125;

const keyOf = (m: SealedMessage) => `${m.from}>${m.to}#${m.seq}`;

/**
 * Messages of sender logs sent again through the relay, at a pace: after a reconnect, for a task
 * restarted after a crash, or when the coordinator restarted. A message already waiting here is
 * not queued twice, so logs sent again at every reconnect of a flaky connection do not pile up.
 */
export class PacedRelay {
  #send: (bytes: Uint8Array) => void;
  #clock: Clock;
  #queue: SealedMessage[] = [];
  #queued = new Set<string>();
  #timer: Timer | null = null;

  constructor(send: (bytes: Uint8Array) => void, clock: Clock = systemClock) {
    this.#send = send;
    this.#clock = clock;
  }

  get waiting(): number {
    return this.#queue.length;
  }

  send(messages: readonly SealedMessage[]): void {
    for (const message of messages) {
      const key = keyOf(message);
      if (this.#queued.has(key)) continue;
      this.#queued.add(key);
      this.#queue.push(message);
    }
    if (this.#timer === null && this.#queue.length) this.#tick();
  }

  stop(): void {
    this.#clock.clear(this.#timer);
    this.#timer = null;
    this.#queue = [];
    this.#queued.clear();
  }

  #tick(): void {
    this.#timer = null;
    for (const message of this.#queue.splice(0, FRAMES_PER_TICK)) {
      this.#queued.delete(keyOf(message));
      this.#send(message.envelope);
    }
    if (this.#queue.length) this.#timer = this.#clock.setTimeout(() => this.#tick(), TICK_MS);
  }
}
