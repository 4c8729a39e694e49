import { ImageAssembly, LIMITS, decodeImage, type ImagePartHeader, type TaskAssignment, type TaskImage, type TaskOutcome, type TaskRef } from '@webpvm/vm-protocol';
import type { OutboxFrame } from './coordinator-outbox.ts';
import { type Clock, type Timer, systemClock } from './clock.ts';

/** How long an assignment waits for its image over a data channel before asking for it through the coordinator, twice. */
const IMAGE_WAIT_MS = 5_000;
/**
 * And a megabyte per second more: a large image may come back whole through the coordinator from
 * the volunteer that kept it (kept-images.ts), with nothing arriving until then.
 */
const IMAGE_BYTES_PER_MS = 1024;

const patience = (task: TaskAssignment) => IMAGE_WAIT_MS + (task.imageBytes ?? 0) / IMAGE_BYTES_PER_MS;
/** Announced images remembered at once: each is dropped when its task starts or goes, so this is only a bound. */
const ANNOUNCED_REMEMBERED = 1024;

export interface IncomingImagesOptions {
  /** To the coordinator, in order with the page's other frames that must reach it (coordinator-outbox.ts). */
  send(frame: OutboxFrame): void;
  /** The image an assignment waited for is whole: the assignment can go on. */
  ready(task: TaskAssignment): void;
  /** The task cannot start here and fails with this outcome. */
  fail(outcome: TaskOutcome): void;
  /** How long an image is waited for, on a hidden page too (clock.ts). */
  clock?: Clock;
}

/**
 * MPVM's transfer, on the receiving side: images of tasks that migrate here are put back together
 * from their parts — which come ahead of the assignment through the coordinator, or on their own
 * over a data channel, maybe after it — and handed to the assignment once whole and sound.
 */
export class IncomingImages {
  #options: IncomingImagesOptions;
  #images = new ImageAssembly(LIMITS.imageBytes * 2);
  /** Assignments whose image is still on its way over a data channel, by `tid#attempt`. */
  #awaiting = new Map<string, { task: TaskAssignment; timer: Timer; asked: boolean }>();
  /** Per `tid#attempt`, the peer its image may come from over a data channel (`image-coming`). */
  #announced = new Map<string, string>();
  /** Tasks that arrived with an image and have not told the coordinator they run again. */
  #arriving = new Set<string>();
  #clock: Clock;

  constructor(options: IncomingImagesOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * The coordinator named the peer the image of `tid`'s attempt may come from: the only one whose
   * pieces of it are taken over a data channel.
   */
  expect({ tid, attempt, peerId }: { tid: string; attempt: number; peerId: string }): void {
    if (this.#announced.size >= ANNOUNCED_REMEMBERED) this.#announced.delete(this.#announced.keys().next().value!);
    this.#announced.set(`${tid}#${attempt}`, peerId);
  }

  /**
   * A piece of a migrating task's image, from the coordinator (`fromPeer` null) or from another
   * host; false when no image of that attempt was announced from that peer, and it is dropped.
   */
  part(header: ImagePartHeader, bytes: Uint8Array, fromPeer: string | null): boolean {
    if (fromPeer !== null && this.#announced.get(`${header.tid}#${header.attempt}`) !== fromPeer) return false;
    const problem = this.#images.add(header, bytes);
    if (problem) console.warn(`webpvm: dropped an image part: ${problem.message}`);
    const waiting = this.#awaiting.get(`${header.tid}#${header.attempt}`);
    if (waiting && header.index === header.count - 1) this.#options.ready(waiting.task);
    else if (waiting) {
      // A large image is on its way: it is waited for while its parts keep coming.
      this.#clock.clear(waiting.timer);
      waiting.timer = this.#clock.setTimeout(() => this.#await(waiting.task), patience(waiting.task));
    }
    return true;
  }

  /**
   * The image of a task assigned with one, once whole and sound; null while it is still on its
   * way (the task waits for it) or when it is not sound (the task fails). A task given its image
   * is arriving until its worker starts (`started`).
   */
  take(task: TaskAssignment): TaskImage | null {
    const key = `${task.tid}#${task.attempt}`;
    const bytes = this.#images.take(task.tid, task.attempt);
    if (!bytes) {
      if (!this.#awaiting.has(key)) this.#await(task);
      return null;
    }
    const waited = this.#awaiting.get(key);
    if (waited) this.#clock.clear(waited.timer);
    this.#awaiting.delete(key);
    this.#announced.delete(key);
    const decoded = bytes.byteLength === task.imageBytes ? decodeImage(bytes) : null;
    // An image is its task's alone: one that names another task (a host that sent the wrong one, or a forged one) is refused.
    if (!decoded?.ok || decoded.value.tid !== task.tid) {
      const message = !decoded ? `its image is ${bytes.byteLength} bytes, not ${task.imageBytes}` : decoded.ok ? `its image is ${decoded.value.tid}'s` : decoded.error.message;
      this.#options.fail({ tid: task.tid, attempt: task.attempt, ok: false, error: { code: 'E_HOST_FAULT', message } });
      return null;
    }
    this.#arriving.add(task.tid);
    return decoded.value;
  }

  /** Whether an assignment of `tid` waits for its image here: it is this page's task already, and its messages wait too. */
  waitsFor(tid: string): boolean {
    for (const { task } of this.#awaiting.values()) if (task.tid === tid) return true;
    return false;
  }

  /** The task's worker was handed the task: one that arrived with an image tells the coordinator it runs again. */
  started(ref: TaskRef): void {
    if (this.#arriving.delete(ref.tid)) this.#options.send({ type: 'resumed', tid: ref.tid, attempt: ref.attempt });
  }

  /** Cancelled assignments wait for their images no more. */
  cancel(refs: TaskRef[]): void {
    for (const ref of refs) {
      const waiting = this.#awaiting.get(`${ref.tid}#${ref.attempt}`);
      if (waiting) this.#clock.clear(waiting.timer);
      this.#awaiting.delete(`${ref.tid}#${ref.attempt}`);
    }
  }

  /**
   * The task ended, left, or was cancelled before its worker started: parts of its images that
   * came are dropped, and it no longer arrives (a later attempt of the tid is not a resumption).
   */
  forget(tid: string): void {
    this.#images.forget(tid);
    for (const key of this.#announced.keys()) if (key.startsWith(`${tid}#`)) this.#announced.delete(key);
    this.#arriving.delete(tid);
  }

  stop(): void {
    for (const { timer } of this.#awaiting.values()) this.#clock.clear(timer);
  }

  /**
   * An image over a data channel may come after its assignment: the task waits for it, then asks
   * for it through the coordinator, then gives up (it restarts from its checkpoint elsewhere).
   */
  #await(task: TaskAssignment): void {
    const key = `${task.tid}#${task.attempt}`;
    const waiting = this.#awaiting.get(key);
    if (waiting && waiting.asked) {
      this.#awaiting.delete(key);
      this.#options.fail({ tid: task.tid, attempt: task.attempt, ok: false, error: { code: 'E_HOST_FAULT', message: 'its image did not arrive' } });
      return;
    }
    if (waiting) this.#options.send({ type: 'image-missing', tid: task.tid, attempt: task.attempt });
    this.#awaiting.set(key, { task, asked: waiting !== undefined, timer: this.#clock.setTimeout(() => this.#await(task), patience(task)) });
  }
}
