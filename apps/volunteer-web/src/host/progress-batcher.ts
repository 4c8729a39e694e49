import { LIMITS, type HostMessage, type TaskRef } from '@webpvm/vm-protocol';
import { type Clock, type Timer, systemClock } from './clock.ts';

const FLUSH_MS = 500;

interface TaskProgress {
  attempt: number;
  fraction: number;
  messagesOut: number;
  messagesIn: number;
}

/**
 * Keeps the latest fraction and message counts per task and sends what changed together, at
 * most every 500 ms.
 */
export class ProgressBatcher {
  #send: (message: HostMessage) => boolean;
  #tasks = new Map<string, TaskProgress>();
  #changed = new Set<string>();
  #timer: Timer | null = null;
  #clock: Clock;

  constructor(send: (message: HostMessage) => boolean, clock: Clock = systemClock) {
    this.#send = send;
    this.#clock = clock;
  }

  record(ref: TaskRef, fraction: number): void {
    this.#task(ref).fraction = fraction;
  }

  /** The task sent `count` messages. */
  countOut(ref: TaskRef, count = 1): void {
    this.#task(ref).messagesOut += count;
  }

  /** `count` messages reached the task. */
  countIn(ref: TaskRef, count: number): void {
    this.#task(ref).messagesIn += count;
  }

  /**
   * The task ended: its fraction no longer matters (its result says more), but its final message
   * counts go now, ahead of its result.
   */
  forget(tid: string): void {
    const task = this.#tasks.get(tid);
    const item = this.#changed.has(tid) && task && (task.messagesOut || task.messagesIn) ? itemOf(tid, task) : null;
    this.#tasks.delete(tid);
    this.#changed.delete(tid);
    if (item) this.#send({ type: 'progress', items: [item] });
  }

  stop(): void {
    if (this.#timer) this.#clock.clear(this.#timer);
    this.#timer = null;
  }

  #task(ref: TaskRef): TaskProgress {
    let task = this.#tasks.get(ref.tid);
    if (!task || task.attempt !== ref.attempt) {
      task = { attempt: ref.attempt, fraction: 0, messagesOut: 0, messagesIn: 0 };
      this.#tasks.set(ref.tid, task);
    }
    this.#changed.add(ref.tid);
    this.#timer ??= this.#clock.setTimeout(() => this.#flush(), FLUSH_MS);
    return task;
  }

  #flush(): void {
    this.#timer = null;
    const items = [...this.#changed].flatMap((tid) => {
      const task = this.#tasks.get(tid);
      return task ? [itemOf(tid, task)] : [];
    });
    this.#changed.clear();
    for (let i = 0; i < items.length; i += LIMITS.itemsPerBatch) {
      this.#send({ type: 'progress', items: items.slice(i, i + LIMITS.itemsPerBatch) });
    }
  }
}

function itemOf(tid: string, { attempt, fraction, messagesOut, messagesIn }: TaskProgress) {
  return messagesOut || messagesIn ? { tid, attempt, fraction, messagesOut, messagesIn } : { tid, attempt, fraction };
}
