/**
 * Bytes a host may send per second: a token bucket of `perSecond`, holding at most `burst`. A frame
 * is always taken whole, however large (a task message may be larger than the burst); the host
 * then owes the rest, and its socket is not read until it has paid: TCP slows the host itself and
 * nobody else.
 */
export class ByteBudget {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(perSecond: number, burst: number, now: () => number = () => performance.now()) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  /** Spends `bytes`; returns how long to stop reading, in ms, for the bucket to be out of debt (0: read on). */
  spend(bytes: number): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) * this.#perSecond) / 1000);
    this.#at = now;
    this.#tokens -= bytes;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.#perSecond);
  }
}
