import type { StoredTask } from '../store/store.ts';
import type { TaskRun } from './model.ts';

/** Root tasks waiting for their first attempt that a job holds in memory at most. */
export const WINDOW_TASKS = 4096;

/** After a failed read, how long the window waits before it reads again. */
const RETRY_MS = 1_000;

/** Where a window reads its tasks from, and what it tells. */
export interface WindowSource {
  /** Root tasks still pending with `from ≤ index < until`, in index order, at most `limit` (Store.pendingRoots). */
  read(from: number, until: number, limit: number): Promise<StoredTask[]>;
  /** The task in memory for a row just read. */
  admit(row: StoredTask): TaskRun;
  /** Tasks were read in: leasing should look again. */
  more(): void;
  failed(error: unknown): void;
}

/**
 * The root tasks of one job that wait for their first attempt. Only a window of them is in
 * memory; the rest stay in the store and are read in, in index order, a page at a time, when
 * fewer than half the window are left. Each root task comes into memory once, so none is leased
 * twice at once or skipped:
 *
 * - `loadedUpTo` only moves forward, and a page only reads rows at or past it;
 * - a page reads only rows already stored (below `durableUpTo`), so none is missed while its
 *   insert is still on its way;
 * - roots a restart put in memory already (those running then) are skipped when a page reaches them.
 *
 * A task once taken is the job book's: a retry goes to the job's retries, not back here.
 */
export class TaskWindow {
  readonly #size: number;
  readonly #source: WindowSource;
  #queue: TaskRun[] = [];
  #head = 0;
  /** Every root with a lower index has been read in (or was in memory already). */
  #loadedUpTo = 0;
  /** Every root with a lower index is stored. */
  #durableUpTo = 0;
  /** Roots at or past `loadedUpTo` that are in memory already: a page skips them. */
  readonly #ahead = new Set<number>();
  #reading = false;
  #closed = false;

  constructor(size: number, source: WindowSource) {
    this.#size = size;
    this.#source = source;
  }

  /** Tasks in memory waiting here. */
  get waiting(): number {
    return this.#queue.length - this.#head;
  }

  /** The next root task in index order, or null when none is in memory now (more may be on their way). */
  take(): TaskRun | null {
    if (this.#head >= this.#queue.length) return null;
    const task = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as unknown as TaskRun;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    this.#fill();
    return task;
  }

  /** Roots with an index below `upTo` are stored now: they may be read in. */
  durable(upTo: number): void {
    if (upTo <= this.#durableUpTo) return;
    this.#durableUpTo = upTo;
    this.#fill();
  }

  /** After a restart: every row below `size` is stored, and the roots `inMemory` (running ones) are in memory already. */
  restored(size: number, inMemory: Iterable<number>): void {
    for (const index of inMemory) this.#ahead.add(index);
    this.durable(size);
  }

  /** The job ended: nothing more is read; what waits here is handed back (to be cancelled). */
  close(): TaskRun[] {
    this.#closed = true;
    const left = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    return left;
  }

  #fill(): void {
    if (this.#reading || this.#closed || this.#loadedUpTo >= this.#durableUpTo || this.waiting * 2 >= this.#size) return;
    this.#reading = true;
    const from = this.#loadedUpTo;
    const until = this.#durableUpTo;
    const limit = this.#size - this.waiting;
    this.#source.read(from, until, limit).then(
      (rows) => {
        this.#reading = false;
        if (this.#closed) return;
        this.#loadedUpTo = rows.length === limit ? rows[rows.length - 1]!.index + 1 : until;
        for (const row of rows) if (!this.#ahead.has(row.index)) this.#queue.push(this.#source.admit(row));
        for (const index of this.#ahead) if (index < this.#loadedUpTo) this.#ahead.delete(index);
        if (rows.length) this.#source.more();
        this.#fill();
      },
      (error: unknown) => {
        this.#source.failed(error);
        setTimeout(() => {
          this.#reading = false;
          this.#fill();
        }, RETRY_MS).unref();
      },
    );
  }
}
