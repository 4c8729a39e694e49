import { WebpvmError } from '@webpvm/vm-protocol';

/** Failed bearer tokens one address may present in a window; past it, its requests are refused until the window ends. */
const FAILURES = 20;
const WINDOW_MS = 60_000;
/** Addresses remembered at once; the oldest go first (a flood of addresses only forgets, never grows). */
const ADDRESSES = 10_000;

/** Guessing tokens is slowed to FAILURES a minute per network address. */
export class AuthThrottle {
  readonly #failures = new Map<string, { count: number; since: number }>();

  /** Windows run on the monotonic clock: a step of the wall clock neither lifts a throttle nor holds it for hours. */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Throws E_RATE_LIMITED while `address` is past its failures. */
  check(address: string): void {
    const entry = this.#current(address);
    if (entry && entry.count >= FAILURES) {
      const seconds = Math.ceil((entry.since + WINDOW_MS - this.now()) / 1000);
      throw new WebpvmError('E_RATE_LIMITED', `too many refused tokens from this address: try again in ${seconds} s`);
    }
  }

  failed(address: string): void {
    const entry = this.#current(address) ?? { count: 0, since: this.now() };
    entry.count++;
    this.#failures.delete(address);
    this.#failures.set(address, entry);
    if (this.#failures.size > ADDRESSES) this.#failures.delete(this.#failures.keys().next().value!);
  }

  #current(address: string): { count: number; since: number } | undefined {
    const entry = this.#failures.get(address);
    if (entry && this.now() - entry.since >= WINDOW_MS) {
      this.#failures.delete(address);
      return undefined;
    }
    return entry;
  }
}
