import { REPORT_BATCH } from '@webpvm/vm-protocol';

/** How long a report may wait for others to go with it. */
const REPORT_DELAY_MS = 2;

/**
 * What a worker tells its host that may wait a little (copies of what went on lanes, reports of
 * what came on them): batched off the message path, so that a message and its answer do not
 * each wake the page. `flush` sends everything at once, where the host must know before
 * something else happens (a checkpoint, the task's end).
 */
export class ReportBatch<T> {
  readonly #send: (items: T[]) => void;
  #items: T[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(send: (items: T[]) => void) {
    this.#send = send;
  }

  add(item: T): void {
    this.#items.push(item);
    if (this.#items.length >= REPORT_BATCH) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), REPORT_DELAY_MS);
  }

  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    while (this.#items.length > 0) this.#send(this.#items.splice(0, REPORT_BATCH));
  }
}
