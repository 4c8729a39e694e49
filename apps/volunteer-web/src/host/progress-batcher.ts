import { LIMITS, type HostMessage, type TaskRef } from '@webpvm/vm-protocol';

const FLUSH_MS = 500;

/** Keeps the latest fraction per task and sends them together, at most every 500 ms. */
export class ProgressBatcher {
  #send: (message: HostMessage) => boolean;
  #latest = new Map<string, { tid: string; attempt: number; fraction: number }>();
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(send: (message: HostMessage) => boolean) {
    this.#send = send;
  }

  record(ref: TaskRef, fraction: number): void {
    this.#latest.set(ref.tid, { tid: ref.tid, attempt: ref.attempt, fraction });
    this.#timer ??= setTimeout(() => this.#flush(), FLUSH_MS);
  }

  /** A finished task's progress no longer matters: its result says more. */
  forget(tid: string): void {
    this.#latest.delete(tid);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #flush(): void {
    this.#timer = null;
    const items = [...this.#latest.values()];
    this.#latest.clear();
    for (let i = 0; i < items.length; i += LIMITS.itemsPerBatch) {
      this.#send({ type: 'progress', items: items.slice(i, i + LIMITS.itemsPerBatch) });
    }
  }
}
