/**
 * Coalesces the scheduler's writes into one store transaction per turn of the event loop,
 * and runs callbacks (acks to hosts, replies to clients) only once their writes are durable.
 * A commit that fails is retried, every `retryMs` while it fails: the callbacks waiting for it
 * wait for the retry that succeeds, but whoever awaits `flushed()` is told of the failure at once.
 */
export class WriteQueue {
  private scheduled = false;
  private running: Promise<void> = Promise.resolve();
  private waiting: (() => void)[] = [];
  private watchers: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  private retry: NodeJS.Timeout | null = null;

  constructor(
    private readonly commit: () => Promise<void>,
    private readonly onError: (error: unknown) => void = () => undefined,
    private readonly retryMs = 1_000,
  ) {}

  /**
   * Ask for a commit soon; `afterDurable` runs once everything marked so far is stored, however
   * many attempts that takes: what it tells (an ack to a host) is never told of what failed.
   */
  schedule(afterDurable?: () => void): void {
    if (afterDurable) this.waiting.push(afterDurable);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.running = this.running.then(() => this.flushNow());
    });
  }

  /**
   * Resolves once everything marked so far is stored; rejects with the store's error when the
   * attempt to store it fails. What it marked stays marked and is retried: a request that awaits
   * it answers now, rather than hang on a store that may not come back.
   */
  flushed(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.watchers.push({ resolve, reject });
      this.schedule();
    });
  }

  private async flushNow(): Promise<void> {
    this.scheduled = false;
    const callbacks = this.waiting;
    const watchers = this.watchers;
    this.waiting = [];
    this.watchers = [];
    try {
      await this.commit();
    } catch (error) {
      this.onError(error);
      this.waiting.unshift(...callbacks);
      for (const watcher of watchers) watcher.reject(error);
      this.retry ??= setTimeout(() => {
        this.retry = null;
        this.schedule();
      }, this.retryMs).unref();
      return;
    }
    for (const watcher of watchers) watcher.resolve();
    for (const callback of callbacks) callback();
  }
}
