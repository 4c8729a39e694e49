import { REPORT_BATCH } from '@webpvm/vm-protocol/worker';

/**
 * How long a report may wait for others to go with it. Each batch wakes the page and sends an
 * acknowledgement to the sender's page: at 2 ms those wake-ups cost a pinging pair of tasks a
 * sixth of its round trip on a 2-core machine, at 20 ms nothing measurable (bench/README.md).
 */
const REPORT_DELAY_MS = 20;

/**
 * What a worker tells its host that may wait a little (copies of what went on lanes, reports of
 * what came on them): batched off the message path, so that a message and its answer do not
 * each wake the page. `flush` sends everything at once, where the host must know before
 * something else happens (a checkpoint, the task's end); `hurry`, where the host waits for it.
 */
export class ReportBatch<T> {
  readonly #send: (items: T[]) => void;
  #items: T[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;
  #hurriedUntil = -Infinity;

  constructor(send: (items: T[]) => void) {
    this.#send = send;
  }

  add(item: T): void {
    this.#items.push(item);
    if (this.#items.length >= REPORT_BATCH || performance.now() < this.#hurriedUntil) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), REPORT_DELAY_MS);
  }

  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    while (this.#items.length > 0) this.#send(this.#items.splice(0, REPORT_BATCH));
  }

  /**
   * Sends what waits now, and what comes in the next batch's time as it comes: what the host
   * waits for may still be on its way to this worker.
   */
  hurry(): void {
    this.flush();
    this.#hurriedUntil = performance.now() + REPORT_DELAY_MS;
  }
}
