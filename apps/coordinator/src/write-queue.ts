/**
 * Coalesces the scheduler's writes into one store transaction per turn of the event loop,
 * and runs callbacks (acks to hosts, replies to clients) only once their writes are durable.
 */
export class WriteQueue {
  private scheduled = false;
  private running: Promise<void> = Promise.resolve();
  private waiting: (() => void)[] = [];

  constructor(
    private readonly commit: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
    private readonly retryMs = 1_000,
  ) {}

  /** Ask for a commit soon; `afterDurable` runs once everything marked so far is stored. */
  schedule(afterDurable?: () => void): void {
    if (afterDurable) this.waiting.push(afterDurable);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.running = this.running.then(() => this.flushNow());
    });
  }

  flushed(): Promise<void> {
    return new Promise((resolve) => this.schedule(resolve));
  }

  private async flushNow(): Promise<void> {
    this.scheduled = false;
    const callbacks = this.waiting;
    this.waiting = [];
    try {
      await this.commit();
    } catch (error) {
      this.onError(error);
      this.waiting.unshift(...callbacks);
      setTimeout(() => this.schedule(), this.retryMs).unref();
      return;
    }
    for (const callback of callbacks) callback();
  }
}
