import type { HostMessage } from '@webpvm/vm-protocol';

/** A JSON message, or envelope bytes for the relay (a binary frame). */
export type OutboxFrame = HostMessage | Uint8Array;

/**
 * Frames that must reach the coordinator even when it is away — task requests and relayed
 * messages — kept in order until the next welcome. A frame the socket took is not sent again
 * from here: unanswered requests go again after each welcome (pending-requests.ts), and relayed
 * messages lost with a broken connection or a restarted coordinator come again from their
 * senders' logs.
 */
export class CoordinatorOutbox {
  #send: (frame: OutboxFrame) => boolean;
  #waiting: OutboxFrame[] = [];

  constructor(send: (frame: OutboxFrame) => boolean) {
    this.#send = send;
  }

  send(frame: OutboxFrame): void {
    if (this.#waiting.length === 0 && this.#send(frame)) return;
    this.#waiting.push(frame);
  }

  /** After a welcome. */
  flush(): void {
    let sent = 0;
    while (sent < this.#waiting.length && this.#send(this.#waiting[sent]!)) sent++;
    this.#waiting.splice(0, sent);
  }

  /** Requests waiting here go: after a welcome they are all sent again (pending-requests.ts), once. */
  dropRequests(): void {
    this.#waiting = this.#waiting.filter((frame) => frame instanceof Uint8Array || frame.type !== 'request');
  }

  /** A task ended: its waiting requests no longer matter (its messages still do). */
  dropRequestsOf(tid: string): void {
    this.#waiting = this.#waiting.filter((frame) => frame instanceof Uint8Array || frame.type !== 'request' || frame.tid !== tid);
  }
}
