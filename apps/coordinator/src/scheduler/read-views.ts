import { type HostInfo, type JobStatus, type ResultLine, type TaskCounts, type TaskInfo, type TaskList, parseTid } from '@webpvm/vm-protocol';
import type { Store, StoredJob, StoredOutcome } from '../store/store.ts';
import type { HostRegistry } from './host-registry.ts';
import type { JobBook } from './job-book.ts';
import { type HostRun, type JobRun, type StartPoint, countsOf } from './model.ts';
import type { WriteBehind } from './write-behind.ts';
import type { VolunteerRecord } from './volunteers.ts';

export interface ReadViewsOptions {
  book: JobBook;
  hosts: HostRegistry;
  store: Store;
  writes: WriteBehind;
}

/** A job as the API shows it, with who may see it. */
export interface JobView {
  status: JobStatus;
  owner: string;
}

/** Results read from the store per query: a job's results are streamed page by page, never held whole. */
const RESULTS_PAGE = 1_000;

/**
 * What the API, the CLI and the dashboard read: jobs, results, tasks and hosts, each mapped to
 * its wire shape in one place. A job's status is read from memory while it is there, else from
 * the store; its results and tasks from the store, a page at a time, once what memory holds of
 * them is stored.
 */
export class ReadViews {
  readonly #opts: ReadViewsOptions;

  constructor(opts: ReadViewsOptions) {
    this.#opts = opts;
  }

  /** The status of a job still in memory (unfinished, or finished and not yet stored). */
  status(jobId: string): JobStatus | null {
    const job = this.#opts.book.job(jobId);
    return job ? liveStatus(job) : null;
  }

  /** The owner of a job still in memory: enough for events, which only such jobs make. */
  ownerOf(jobId: string): string | null {
    return this.#opts.book.job(jobId)?.stored.owner ?? null;
  }

  /** The owner of any job, in memory or not; null for no such job. */
  async owner(jobId: string): Promise<string | null> {
    return this.ownerOf(jobId) ?? (await this.#opts.store.getJob(jobId))?.owner ?? null;
  }

  async job(jobId: string): Promise<JobView | null> {
    const live = this.#opts.book.job(jobId);
    if (live) return { status: liveStatus(live), owner: live.stored.owner };
    const stored = await this.#opts.store.getJob(jobId);
    return stored && { status: storedStatus(stored), owner: stored.owner };
  }

  /** The latest jobs, of one owner or (null) of all. */
  async jobs(owner: string | null, limit: number): Promise<JobStatus[]> {
    const stored = await this.#opts.store.listJobs({ owner, limit });
    return stored.map((job) => this.status(job.id) ?? storedStatus(job));
  }

  /** `results[i]` belongs to input `i` (null until its task is done): pages of them, in input order. */
  async *results(jobId: string): AsyncGenerator<unknown[]> {
    await this.#opts.writes.durable();
    for (let after = -1; ; ) {
      const page = await this.#opts.store.resultsInOrder(jobId, after, RESULTS_PAGE);
      if (page.length) yield page.map((r) => r.result);
      if (page.length < RESULTS_PAGE) return;
      after = page[page.length - 1]!.index;
    }
  }

  /**
   * Root outcomes stored after completion cursor `after`, in cursor order, in pages. With
   * `follow`, it goes on as more are stored, until the job has ended and all are read (or
   * `signal` aborts). Only what is stored is read: a client that resumes from the last cursor it
   * got misses nothing and gets nothing twice.
   */
  async *outcomes(jobId: string, after: number, follow: boolean, signal: AbortSignal): AsyncGenerator<ResultLine[]> {
    const { store } = this.#opts;
    const finished = new AbortController();
    const until = AbortSignal.any([signal, finished.signal]);
    let stored: Promise<void> | null = null;
    let woken = true;
    try {
      for (let cursor = after; !until.aborted; ) {
        // Listening starts before reading: a commit between the two still wakes the wait after.
        if (follow && woken) {
          woken = false;
          stored = this.#nextCommit(jobId, until).then(() => {
            woken = true;
          });
        }
        // A job marked finished in the store has all its outcomes stored before or with that mark.
        const ended = (await store.getJob(jobId))?.finishedAt != null;
        const page = await store.outcomesAfter(jobId, cursor, RESULTS_PAGE);
        if (page.length) {
          cursor = page[page.length - 1]!.seq;
          yield page.map(resultLine);
        }
        if (page.length === RESULTS_PAGE) continue;
        if (!stored || ended) return;
        await stored;
      }
    } finally {
      // Whoever stops reading, the wait for the next commit stops listening.
      finished.abort();
    }
  }

  /** A page of the job's tasks with index > `after`, read from the store, with what memory knows better (progress). */
  async tasks(jobId: string, after: number, limit: number): Promise<TaskList> {
    await this.#opts.writes.durable();
    const { book, store } = this.#opts;
    const rows = await store.tasksPage(jobId, after, limit + 1);
    const page = rows.slice(0, limit);
    const cancelled = (book.job(jobId)?.stored ?? (await store.getJob(jobId)))?.state === 'cancelled';
    const tasks = page.map((row): TaskInfo => {
      const live = book.task(row.tid);
      // A cancelled job's rows are marked cancelled in parts, after the job (write-behind.ts sweep).
      const state = cancelled && row.state === 'pending' ? 'cancelled' : (live?.state ?? row.state);
      return {
        tid: row.tid,
        parent: row.parent,
        state,
        attempt: live?.attempt ?? row.attempt,
        hostId: live ? live.hostId : row.hostId,
        progress: state === 'done' ? 1 : (live?.progress ?? 0),
        messagesIn: live?.messagesIn ?? row.messagesIn,
        messagesOut: live?.messagesOut ?? row.messagesOut,
        restartFrom: live ? restartFrom(live.start) : null,
        keptBy: live?.start.kept?.hostId ?? null,
      };
    });
    return { tasks, next: rows.length > limit ? page[page.length - 1]!.index : null };
  }

  /** Resolves at the next commit that writes job `jobId`, or when `signal` aborts. */
  #nextCommit(jobId: string, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        stop();
        signal.removeEventListener('abort', done);
        resolve();
      };
      const stop = this.#opts.writes.onCommit((jobIds) => {
        if (jobIds.has(jobId)) done();
      });
      signal.addEventListener('abort', done);
    });
  }

  /** Every host (`owner` null), or those running a task of `owner`'s jobs now. */
  hosts(owner: string | null): HostInfo[] {
    const { hosts, book } = this.#opts;
    const runsFor = (h: HostRun) => [...h.assigned.keys()].some((tid) => book.job(parseTid(tid).jobId)?.stored.owner === owner);
    return [...hosts.all()].filter((h) => owner === null || runsFor(h)).map((h) => hostInfo(h, h.volunteerId === null ? null : hosts.volunteers.get(h.volunteerId)));
  }
}

function liveStatus(job: JobRun): JobStatus {
  const { total } = job.stored;
  return jobStatus(job.stored, countsOf(job), total ? job.progressSum / total : 1);
}

/** A job only the store holds has finished (a restart holds every unfinished one): nothing of it runs. */
function storedStatus(job: StoredJob): JobStatus {
  const { total, tally } = job;
  const pending = total - tally.done - tally.failed - tally.cancelled;
  return jobStatus(job, { total, pending, running: 0, done: tally.done, failed: tally.failed }, total ? tally.done / total : 1);
}

function jobStatus(job: StoredJob, tasks: TaskCounts, progress: number): JobStatus {
  return {
    id: job.id,
    name: job.name,
    state: job.state,
    tasks,
    progress: Math.min(1, Math.max(0, progress)),
    migrations: job.migrations,
    attempts: job.attempts,
    priority: job.options.priority,
    createdAt: new Date(job.createdAt).toISOString(),
    finishedAt: job.finishedAt === null ? null : new Date(job.finishedAt).toISOString(),
    error: job.error,
  };
}

function resultLine(o: StoredOutcome): ResultLine {
  return o.ok
    ? { cursor: o.seq, index: o.root, ok: true, result: o.result }
    : { cursor: o.seq, index: o.root, ok: false, error: o.error ?? { code: 'E_INTERNAL', message: 'unknown error' } };
}

function hostInfo(h: HostRun, volunteer: VolunteerRecord | null): HostInfo {
  return {
    hostId: h.hostId,
    volunteerId: h.volunteerId,
    validated: volunteer?.validated ?? 0,
    invalid: volunteer?.invalid ?? 0,
    trusted: volunteer?.trusted ?? false,
    connected: h.link !== null,
    draining: h.draining,
    slots: h.slots,
    running: h.assigned.size,
    done: h.done,
    userAgent: h.userAgent,
    connectedAt: h.connectedAt === null ? null : new Date(h.connectedAt).toISOString(),
    lastSeenAt: new Date(h.lastSeenAt).toISOString(),
  };
}

function restartFrom(start: StartPoint): TaskInfo['restartFrom'] {
  if (start.image || start.imageAway) return 'image';
  if (start.kept) return 'kept';
  return start.checkpoint ? 'checkpoint' : 'start';
}
