import type { Checkpoint } from '@webpvm/vm-protocol';
import type { Logger } from 'pino';
import { type Store, type StoredHost, type StoredTask, type WriteBatch, taskUpdate } from '../store/store.ts';
import type { HostRun, JobRun, TaskRun } from './model.ts';
import { WriteQueue } from '../write-queue.ts';

/**
 * The scheduler's one way to the store: the parts mark what they changed, and everything marked
 * in a turn of the event loop is committed in one transaction. A batch that fails to commit is
 * marked again, whole, and retried.
 */
export class WriteBehind {
  readonly #store: Store;
  readonly #queue: WriteQueue;
  #jobs = new Set<JobRun>();
  #tasks = new Set<TaskRun>();
  #newTasks: TaskRun[] = [];
  #checkpoints = new Map<string, Checkpoint>();
  #hosts = new Set<HostRun>();

  constructor(store: Store, log: Logger) {
    this.#store = store;
    this.#queue = new WriteQueue(
      () => this.#commit(),
      (error) => log.error({ err: error }, 'store commit failed; retrying'),
    );
  }

  job(job: JobRun): void {
    this.#jobs.add(job);
  }

  task(task: TaskRun): void {
    this.#tasks.add(task);
  }

  newTask(task: TaskRun): void {
    this.#newTasks.push(task);
  }

  checkpoint(tid: string, checkpoint: Checkpoint): void {
    this.#checkpoints.set(tid, checkpoint);
  }

  host(host: HostRun): void {
    this.#hosts.add(host);
  }

  /** Asks for a commit soon; `afterDurable` runs once everything marked so far is stored. */
  schedule(afterDurable?: () => void): void {
    this.#queue.schedule(afterDurable);
  }

  /** Resolves once everything marked so far is durable (a job is acknowledged only then). */
  durable(): Promise<void> {
    return this.#queue.flushed();
  }

  async #commit(): Promise<void> {
    const jobs = this.#jobs;
    const tasks = this.#tasks;
    const fresh = this.#newTasks;
    const checkpoints = this.#checkpoints;
    const hosts = this.#hosts;
    this.#jobs = new Set();
    this.#tasks = new Set();
    this.#newTasks = [];
    this.#checkpoints = new Map();
    this.#hosts = new Set();
    const batch: WriteBatch = {
      jobs: [...jobs].map((j) => ({ ...j.stored })),
      newTasks: fresh.map(
        (t): StoredTask => ({
          ...taskUpdate(t),
          jobId: t.job.stored.id,
          index: t.spec.index,
          parent: t.spec.parent,
          name: t.spec.name,
          input: t.spec.input,
          checkpoint: null,
        }),
      ),
      taskUpdates: [...tasks].map(taskUpdate),
      checkpoints: [...checkpoints].map(([tid, checkpoint]) => ({ tid, checkpoint })),
      hosts: [...hosts].map(
        (h): StoredHost => ({
          hostId: h.hostId,
          secretHash: h.secretHash,
          userAgent: h.userAgent,
          createdAt: h.createdAt,
          lastSeenAt: h.lastSeenAt,
          done: h.done,
        }),
      ),
    };
    try {
      await this.#store.commit(batch);
    } catch (error) {
      for (const j of jobs) this.#jobs.add(j);
      for (const t of tasks) this.#tasks.add(t);
      this.#newTasks.unshift(...fresh);
      for (const [tid, c] of checkpoints) if (!this.#checkpoints.has(tid)) this.#checkpoints.set(tid, c);
      for (const h of hosts) this.#hosts.add(h);
      throw error;
    }
  }
}
