import type { MessageFilter, ReceivedMessage } from '../ctx.ts';

interface Waiter {
  filter: MessageFilter;
  resolve: (message: ReceivedMessage | null) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** setTimeout fires at once past this delay, so a longer timeout waits without a timer. */
const MAX_TIMER_MS = 0x7fffffff;

const matches = (message: ReceivedMessage, { from, tag }: MessageFilter): boolean =>
  (from === undefined || message.from === from) && (tag === undefined || message.tag === tag);

/** A message as it is delivered; `envelope` for one that came on a lane, whose bytes its host never saw. */
export type Delivered = ReceivedMessage & { envelope?: Uint8Array };

type Numbered = Delivered & { n: number };

/**
 * The messages delivered to one task and not yet received, in delivery order, and the task's
 * waiting `recv` calls, served in the order they were made. Deliveries are numbered from 1, so
 * that a checkpoint can say which delivered messages the task had not read yet.
 */
export class Mailbox {
  readonly #messages: Numbered[] = [];
  readonly #waiters: Waiter[] = [];
  #received = 0;

  /** How many messages were delivered so far. */
  get received(): number {
    return this.#received;
  }

  /** The delivery numbers of the messages not read yet. */
  unread(): number[] {
    return this.#messages.map((m) => m.n);
  }

  /** The envelopes of the unread messages that came on lanes: a checkpoint hands them to the host. */
  unreadLane(): { n: number; envelope: Uint8Array }[] {
    return this.#messages.flatMap(({ n, envelope }) => (envelope ? [{ n, envelope }] : []));
  }

  deliver(messages: readonly Delivered[]): void {
    for (const { from, tag, data, envelope } of messages) this.#messages.push({ from, tag, data, n: ++this.#received, ...(envelope ? { envelope } : {}) });
    for (let i = 0; i < this.#waiters.length && this.#messages.length > 0; ) {
      const waiter = this.#waiters[i]!;
      const message = this.#take(waiter.filter);
      if (!message) {
        i++;
        continue;
      }
      this.#waiters.splice(i, 1);
      clearTimeout(waiter.timer);
      waiter.resolve(message);
    }
  }

  /**
   * The first matching message, taken out of the mailbox, or the next one to come. A message
   * here cannot match an earlier waiter (it would have been handed over), so taking it at once
   * keeps the call order.
   */
  receive(filter: MessageFilter, timeoutMs: number): Promise<ReceivedMessage | null> {
    const message = this.#take(filter);
    if (message || timeoutMs === 0) return Promise.resolve(message);
    return new Promise((resolve) => {
      const waiter: Waiter = { filter, resolve, timer: undefined };
      if (timeoutMs <= MAX_TIMER_MS) {
        waiter.timer = setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          resolve(null);
        }, timeoutMs);
      }
      this.#waiters.push(waiter);
    });
  }

  has(filter: MessageFilter): boolean {
    return this.#messages.some((message) => matches(message, filter));
  }

  /** Stops the timers of waiting calls, which then never resolve: their task has ended. */
  close(): void {
    for (const waiter of this.#waiters) clearTimeout(waiter.timer);
    this.#waiters.length = 0;
    this.#messages.length = 0;
  }

  #take(filter: MessageFilter): ReceivedMessage | null {
    const index = this.#messages.findIndex((message) => matches(message, filter));
    if (index < 0) return null;
    const { from, tag, data } = this.#messages.splice(index, 1)[0]!;
    return { from, tag, data };
  }
}
