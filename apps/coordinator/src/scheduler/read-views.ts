import type { HostInfo, JobStatus, TaskCounts, TaskInfo } from '@webpvm/vm-protocol';
import type { Store, StoredJob, StoredTask } from '../store/store.ts';
import type { HostRegistry } from './host-registry.ts';
import type { JobBook } from './job-book.ts';
import type { HostRun, JobRun } from './model.ts';

export interface ReadViewsOptions {
  book: JobBook;
  hosts: HostRegistry;
  store: Store;
}

/** A job as the API shows it, with who may see it and how many of its tasks have results. */
export interface JobView {
  status: JobStatus;
  owner: string;
  /** Its bag inputs, or its one main task. */
  roots: number;
}

/**
 * What the API, the CLI and the dashboard read: jobs, results, tasks and hosts, each mapped to
 * its wire shape in one place. A job still in memory is read there; a finished one from the store.
 */
export class ReadViews {
  readonly #opts: ReadViewsOptions;

  constructor(opts: ReadViewsOptions) {
    this.#opts = opts;
  }

  /** The status of a job still in memory (unfinished, or finished since this process started). */
  status(jobId: string): JobStatus | null {
    const job = this.#opts.book.job(jobId);
    return job ? liveStatus(job) : null;
  }

  /** The owner of a job still in memory: enough for events, which only such jobs make. */
  ownerOf(jobId: string): string | null {
    return this.#opts.book.job(jobId)?.stored.owner ?? null;
  }

  /** The owner of any job, finished before this process started or not; null for no such job. */
  async owner(jobId: string): Promise<string | null> {
    return this.ownerOf(jobId) ?? (await this.#opts.store.getJob(jobId))?.owner ?? null;
  }

  async job(jobId: string): Promise<JobView | null> {
    const live = this.#opts.book.job(jobId);
    if (live) return { status: liveStatus(live), owner: live.stored.owner, roots: live.stored.options.roots };
    const stored = await this.#opts.store.getJob(jobId);
    return stored && { status: await this.#storedStatus(stored), owner: stored.owner, roots: stored.options.roots };
  }

  /** The latest jobs, of one owner or (null) of all. */
  async jobs(owner: string | null, limit: number): Promise<JobStatus[]> {
    const stored = await this.#opts.store.listJobs({ owner, limit });
    return Promise.all(stored.map((job) => this.status(job.id) ?? this.#storedStatus(job)));
  }

  /** `results[i]` belongs to root task `i`: null until it is done. */
  async results(jobId: string, roots: number): Promise<unknown[]> {
    const tasks = this.#opts.book.job(jobId)?.tasks;
    if (tasks) return tasks.slice(0, roots).map((t) => (t.state === 'done' ? t.result : null));
    return this.#opts.store.getResults(jobId, roots);
  }

  async tasks(jobId: string): Promise<TaskInfo[]> {
    const tasks = this.#opts.book.job(jobId)?.tasks;
    if (tasks) return tasks.map((t) => taskInfo(t, t.spec.parent, t.progress));
    return (await this.#opts.store.getTasks(jobId)).map((t) => taskInfo(t, t.parent, 0));
  }

  hosts(): HostInfo[] {
    return [...this.#opts.hosts.all()].map(hostInfo);
  }

  async #storedStatus(job: StoredJob): Promise<JobStatus> {
    const counts = await this.#opts.store.taskCounts(job.id);
    return jobStatus(job, counts, counts.total ? counts.done / counts.total : 1);
  }
}

function liveStatus(job: JobRun): JobStatus {
  const { total } = job.stored;
  const { pending, running, done, failed } = job.counts;
  return jobStatus(job.stored, { total, pending, running, done, failed }, total ? job.progressSum / total : 1);
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

/** `progress` counts while the task runs; a done task is whole. */
function taskInfo(t: Pick<StoredTask, 'tid' | 'state' | 'attempt' | 'hostId' | 'messagesIn' | 'messagesOut'>, parent: string | null, progress: number): TaskInfo {
  return {
    tid: t.tid,
    parent,
    state: t.state,
    attempt: t.attempt,
    hostId: t.hostId,
    progress: t.state === 'done' ? 1 : progress,
    messagesIn: t.messagesIn,
    messagesOut: t.messagesOut,
  };
}

function hostInfo(h: HostRun): HostInfo {
  return {
    hostId: h.hostId,
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
