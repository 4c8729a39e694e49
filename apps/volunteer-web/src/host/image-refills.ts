import { LIMITS, isSealed, type HostMessage, type TaskAssignment, type TaskImage, type TaskOutcome, type TaskRef } from '@webpvm/vm-protocol';
import { type Clock, type Timer, systemClock } from './clock.ts';

/** How often the senders are asked again while messages an image names have not come. */
const ASK_EVERY_MS = 3_000;
/**
 * After this many asks the task gives up here and restarts from its checkpoint kept off the tab:
 * a sender that let go of a message (its log full) or whose log went with its tab cannot send it.
 */
const ASKS = 10;

export interface ImageRefillsOptions {
  /** To the coordinator: `refill`. */
  send(message: HostMessage): void;
  /** Every message the image named came again: the task starts with this image, its mailbox whole. */
  ready(task: TaskAssignment, image: TaskImage): void;
  /** The task cannot start here and fails with this outcome. */
  fail(outcome: TaskOutcome): void;
  /** How long the messages are waited for, on a hidden page too (clock.ts). */
  clock?: Clock;
}

interface Waiting {
  task: TaskAssignment;
  image: TaskImage;
  /** Per sender, the seq after which it is to send again: one before the first the image names. */
  from: { tid: string; after: number }[];
  asks: number;
  timer: Timer;
}

/**
 * A migrated task whose image names messages it read on lanes by sender and seq, not their bytes
 * (vm-protocol task-image.ts `MessageRef`): it waits here while its senders, asked through the
 * coordinator (`refill`), send them again from their logs (sender-log.ts). Its inbox, restored
 * from the image at once, puts each in its place as it comes; once none is missing the task
 * starts as any migrated task does, in the order its image kept.
 */
export class ImageRefills {
  #options: ImageRefillsOptions;
  #waiting = new Map<string, Waiting>();
  #clock: Clock;

  constructor(options: ImageRefillsOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Whether the image names messages it does not hold. */
  static needed(image: TaskImage): boolean {
    return !image.mailbox.every(isSealed);
  }

  /** The task waits for the messages its image names; its senders are asked for them now. */
  wait(task: TaskAssignment, image: TaskImage): void {
    const after = new Map<string, number>();
    for (const entry of image.mailbox) {
      if (isSealed(entry)) continue;
      after.set(entry.from, Math.min(after.get(entry.from) ?? Infinity, entry.seq - 1));
    }
    const from = [...after].map(([tid, seq]) => ({ tid, after: seq }));
    const waiting: Waiting = { task, image, from, asks: 1, timer: this.#clock.setTimeout(() => this.#ask(task.tid), ASK_EVERY_MS) };
    this.#waiting.set(task.tid, waiting);
    this.#request(waiting);
  }

  waitsFor(tid: string): boolean {
    return this.#waiting.has(tid);
  }

  /** The inbox has every message the image of `tid` named (`mailbox`, in its order): the task can start. */
  filled(tid: string, mailbox: TaskImage['mailbox']): void {
    const waiting = this.#waiting.get(tid);
    if (!waiting) return;
    this.#drop(tid);
    this.#options.ready(waiting.task, { ...waiting.image, mailbox });
  }

  /** Cancelled assignments wait no more. */
  cancel(refs: readonly TaskRef[]): void {
    for (const ref of refs) if (this.#waiting.get(ref.tid)?.task.attempt === ref.attempt) this.#drop(ref.tid);
  }

  forget(tid: string): void {
    this.#drop(tid);
  }

  stop(): void {
    for (const tid of [...this.#waiting.keys()]) this.#drop(tid);
  }

  #ask(tid: string): void {
    const waiting = this.#waiting.get(tid);
    if (!waiting) return;
    const { task } = waiting;
    if (waiting.asks >= ASKS) {
      this.#drop(tid);
      const message = `the messages its image names did not come again from their senders within ${(ASKS * ASK_EVERY_MS) / 1000} s`;
      this.#options.fail({ tid, attempt: task.attempt, ok: false, error: { code: 'E_HOST_FAULT', message } });
      return;
    }
    waiting.asks += 1;
    waiting.timer = this.#clock.setTimeout(() => this.#ask(tid), ASK_EVERY_MS);
    this.#request(waiting);
  }

  #request({ task, from }: Waiting): void {
    for (let i = 0; i < from.length; i += LIMITS.itemsPerBatch) {
      this.#options.send({ type: 'refill', tid: task.tid, attempt: task.attempt, from: from.slice(i, i + LIMITS.itemsPerBatch) });
    }
  }

  #drop(tid: string): void {
    const waiting = this.#waiting.get(tid);
    if (waiting) this.#clock.clear(waiting.timer);
    this.#waiting.delete(tid);
  }
}
