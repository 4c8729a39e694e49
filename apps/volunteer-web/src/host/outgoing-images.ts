import { LIMITS, imageParts, type CoordinatorMessageOf, type TaskOutcome } from '@webpvm/vm-protocol';
import type { OutboxFrame } from './coordinator-outbox.ts';
import { FrameKind } from './messaging/channel-frames.ts';
import type { DataLink } from './messaging/data-link.ts';
import { type Clock, type Timer, systemClock } from './clock.ts';

/** How long an image sent over a data channel is kept, to send it again through the coordinator. */
const KEEP_SENT_IMAGE_MS = 20_000;
/** How long a cut image waits for the coordinator to name its destination before it goes through the coordinator. */
const DESTINATION_WAIT_MS = 250;

/** Where a leaving task runs next, as the coordinator names it. */
export type Destination = Pick<CoordinatorMessageOf<'destination'>, 'attempt' | 'peerId'>;

export interface OutgoingImagesOptions {
  /** To the coordinator, in order with the page's other frames that must reach it (coordinator-outbox.ts). */
  send(frame: OutboxFrame): void;
  /** The open data channel to that host, or null (always, without data channels). */
  channel(peerId: string): DataLink | null;
  /** Whether a destination named soon could still be used: the page has data channels and the coordinator link is up. */
  mayWait(): boolean;
  /** The task cannot move and fails with this outcome. */
  fail(outcome: TaskOutcome): void;
  /** How long to wait for a destination, and to keep sent images, on a hidden page too (clock.ts). */
  clock?: Clock;
}

/** A task that left this page, cut into its image (vm-protocol task-image.ts). */
export interface CutImage {
  tid: string;
  /** The attempt that ran here: the next host runs a later one. */
  attempt: number;
  image: Uint8Array;
  /** Froze at a safe point, rather than to be replayed from its last checkpoint. */
  frozen: boolean;
  obtrusivenessMs: number;
}

/**
 * MPVM's transfer, on the sending side: the image of each task that left goes straight to its
 * next host over a data channel when the coordinator has named that host and a channel to it is
 * open, or else through the coordinator, in 1 MiB parts followed by `migrated`. An image sent
 * over a channel is kept a while, in case the coordinator asks for it again (`send-image`).
 */
export class OutgoingImages {
  #options: OutgoingImagesOptions;
  /** Where each leaving task will run next (the coordinator's `destination`), so its image can go there directly. */
  #destinations = new Map<string, Destination>();
  /** Images cut before their destination was named: they wait for it a little. */
  #unshipped = new Map<string, { ship: (destination: Destination | null) => void; timer: Timer }>();
  /** Images this page sent over data channels, kept a while in case they must go again through the coordinator. */
  #sent = new Map<string, { image: Uint8Array; timer: Timer }>();
  /** The page is going away: its data channels close with it, so images go through the coordinator. */
  #departing = false;
  #clock: Clock;

  constructor(options: OutgoingImagesOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** The coordinator named where a leaving task runs next: its image goes there now if it waits, else once cut. */
  destination(named: CoordinatorMessageOf<'destination'>): void {
    const waiting = this.#unshipped.get(named.tid);
    if (!waiting) {
      this.#destinations.set(named.tid, { attempt: named.attempt, peerId: named.peerId });
      return;
    }
    this.#clock.clear(waiting.timer);
    this.#unshipped.delete(named.tid);
    waiting.ship(named);
  }

  /** Where `tid` runs next if the coordinator named it already, taken for its image (see `ship`). */
  takeDestination(tid: string): Destination | null {
    const destination = this.#destinations.get(tid) ?? null;
    this.#destinations.delete(tid);
    return destination;
  }

  /**
   * Sends the image of a task that left toward `destination`. A task frozen within a millisecond
   * may be cut before the coordinator has named its destination: with none yet, the image waits
   * DESTINATION_WAIT_MS for it, then goes through the coordinator. False when the image is too
   * large to move: the task fails instead.
   */
  ship(cut: CutImage, destination: Destination | null): boolean {
    const { tid, attempt, image } = cut;
    if (image.byteLength > LIMITS.imageBytes) {
      this.#options.fail({ tid, attempt, ok: false, error: { code: 'E_TOO_LARGE', message: `its image is ${image.byteLength} bytes, over ${LIMITS.imageBytes}` } });
      return false;
    }
    const migrated = { type: 'migrated', tid, attempt, imageBytes: image.byteLength, frozen: cut.frozen, obtrusivenessMs: cut.obtrusivenessMs } as const;
    const ship = (named: Destination | null): void => {
      // Straight to the next host when a channel to it is open: the coordinator is spared the bytes.
      const channel = !this.#departing && named?.peerId && named.attempt === attempt + 1 ? this.#options.channel(named.peerId) : null;
      if (channel && named) {
        for (const part of imageParts(tid, named.attempt, image)) channel.send(FrameKind.envelope, part);
        this.#keepSent(tid, image);
        this.#options.send({ ...migrated, via: 'channel' });
        return;
      }
      for (const part of imageParts(tid, attempt, image)) this.#options.send(part);
      this.#options.send({ ...migrated, via: 'coordinator' });
    };
    if (destination || this.#departing || !this.#options.mayWait()) ship(destination);
    else this.#unshipped.set(tid, { ship, timer: this.#clock.setTimeout(() => this.#shipUnanswered(tid), DESTINATION_WAIT_MS) });
    return true;
  }

  /** The coordinator asks again for an image this page sent over a data channel (it did not arrive): it goes through the coordinator. */
  sendAgain({ tid, attempt }: CoordinatorMessageOf<'send-image'>): void {
    const kept = this.#sent.get(tid);
    if (kept) for (const part of imageParts(tid, attempt, kept.image)) this.#options.send(part);
  }

  /** The page is going away, its data channels with it: every image goes through the coordinator, those waiting for a destination now. */
  departing(): void {
    this.#departing = true;
    for (const tid of [...this.#unshipped.keys()]) this.#shipUnanswered(tid);
  }

  /** The task ended here: a destination named for it no longer matters. */
  forget(tid: string): void {
    this.#destinations.delete(tid);
  }

  stop(): void {
    for (const { timer } of [...this.#sent.values(), ...this.#unshipped.values()]) this.#clock.clear(timer);
  }

  #shipUnanswered(tid: string): void {
    const waiting = this.#unshipped.get(tid);
    this.#unshipped.delete(tid);
    waiting?.ship(null);
  }

  #keepSent(tid: string, image: Uint8Array): void {
    const earlier = this.#sent.get(tid);
    if (earlier) this.#clock.clear(earlier.timer);
    this.#sent.set(tid, { image, timer: this.#clock.setTimeout(() => this.#sent.delete(tid), KEEP_SENT_IMAGE_MS) });
  }
}
