import type { Checkpoint } from '@webpvm/vm-protocol';
import type { Logger } from 'pino';
import { type NewTask, type Store, type StoredHost, type WriteBatch, taskUpdate } from '../store/store.ts';
import type { HostRun, JobRun, TaskRun } from './model.ts';
import type { VolunteerRecord } from './volunteers.ts';
import { WriteQueue } from '../write-queue.ts';

/** Rows of a cancelled job marked cancelled per transaction: a job of millions is not one long write. */
const SWEEP_ROWS = 20_000;

/** While commits fail (one attempt a second, and one per turn with something new), one in this many is logged. */
const LOG_EVERY_FAILURES = 60;

/**
 * The scheduler's one way to the store: the parts mark what they changed, and everything marked
 * in a turn of the event loop is committed in one transaction. A batch that fails to commit is
 * marked again, whole, and retried until it is stored; acks waiting for it wait until then, so a
 * host keeps (and after a reconnect resends) what the store could not take. After each commit,
 * those listening hear which jobs it wrote.
 */
export class WriteBehind {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #queue: WriteQueue;
  readonly #listeners = new Set<(jobIds: ReadonlySet<string>) => void>();
  /** Commits failed in a row. */
  #failures = 0;
  #jobs = new Set<JobRun>();
  #tasks = new Set<TaskRun>();
  #newTasks: (TaskRun | NewTask)[] = [];
  #checkpoints = new Map<string, Checkpoint>();
  #hosts = new Set<HostRun>();
  #volunteers = new Set<VolunteerRecord>();
  /** Tasks whose restart image changed: written as it is at commit (none: forgotten). */
  #images = new Set<TaskRun>();
  /** Jobs whose PVM services changed: their state as it is at commit; ended jobs' forgotten. */
  #vms = new Set<JobRun>();

  constructor(store: Store, log: Logger) {
    this.#store = store;
    this.#log = log;
    this.#queue = new WriteQueue(() => this.#commit());
  }

  job(job: JobRun): void {
    this.#jobs.add(job);
  }

  task(task: TaskRun): void {
    this.#tasks.add(task);
  }

  /** A task in memory (a spawned one): its first row is written as it is at commit. */
  newTask(task: TaskRun): void {
    this.#newTasks.push(task);
  }

  /** A task not in memory (an input): its row as it starts. */
  newRow(row: NewTask): void {
    this.#newTasks.push(row);
  }

  checkpoint(tid: string, checkpoint: Checkpoint): void {
    this.#checkpoints.set(tid, checkpoint);
  }

  host(host: HostRun): void {
    this.#hosts.add(host);
  }

  /** The task's restart image changed (job-book.ts `keepImage`). */
  image(task: TaskRun): void {
    this.#images.add(task);
  }

  /** The job's JobVm answered a request or saw a task end: its answers, barriers, watchers and groups are stored. */
  vm(job: JobRun): void {
    this.#vms.add(job);
  }

  volunteer(record: VolunteerRecord): void {
    this.#volunteers.add(record);
  }

  /** Asks for a commit soon; `afterDurable` runs once everything marked so far is stored. */
  schedule(afterDurable?: () => void): void {
    this.#queue.schedule(afterDurable);
  }

  /**
   * Resolves once everything marked so far is durable (a job is acknowledged only then); rejects
   * (E_STORE_UNAVAILABLE) when that commit fails, the marks kept and retried.
   */
  durable(): Promise<void> {
    return this.#queue.flushed();
  }

  /** `listener` hears, after each commit, the ids of the jobs it wrote; returns how to stop listening. */
  onCommit(listener: (jobIds: ReadonlySet<string>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Marks the root tasks of a cancelled job that only the store held cancelled, a part per turn
   * of the event loop; a restart finishes what a stop left (Store.cancelledWithPending).
   */
  sweep(jobId: string): void {
    this.#store.cancelPendingRoots(jobId, SWEEP_ROWS).then(
      (marked) => {
        if (marked === SWEEP_ROWS) setImmediate(() => this.sweep(jobId));
      },
      (error: unknown) => this.#log.error({ err: error, job: jobId }, 'marking a cancelled job’s tasks failed; a restart retries'),
    );
  }

  async #commit(): Promise<void> {
    const jobs = this.#jobs;
    const tasks = this.#tasks;
    const fresh = this.#newTasks;
    const checkpoints = this.#checkpoints;
    const hosts = this.#hosts;
    const volunteers = this.#volunteers;
    const images = this.#images;
    const vms = this.#vms;
    this.#images = new Set();
    this.#vms = new Set();
    this.#jobs = new Set();
    this.#tasks = new Set();
    this.#newTasks = [];
    this.#checkpoints = new Map();
    this.#hosts = new Set();
    this.#volunteers = new Set();
    const updatedAt = Date.now();
    const batch: WriteBatch = {
      // Options (roots) and the tally change as the job runs: the row gets them as they are now.
      jobs: [...jobs].map((j) => ({ ...j.stored, options: { ...j.stored.options }, tally: { ...j.stored.tally } })),
      newTasks: fresh.map((t): NewTask => ('spec' in t ? newRowOf(t) : t)),
      taskUpdates: [...tasks].map(taskUpdate),
      checkpoints: [...checkpoints].map(([tid, checkpoint]) => ({ tid, checkpoint })),
      images: [...images].map((t) => ({ tid: t.tid, jobId: t.job.stored.id, image: t.start.image, kept: t.start.kept })),
      vmStates: [...vms].map((j) => ({ jobId: j.stored.id, state: isFinished(j) ? null : j.vm.state() })),
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
      volunteers: [...volunteers].map(({ provisional: _, ...record }) => ({ ...record, updatedAt })),
    };
    try {
      await this.#store.commit(batch);
    } catch (error) {
      this.#failures++;
      if (this.#failures % LOG_EVERY_FAILURES === 1) this.#log.error({ err: error, failures: this.#failures }, 'store commit failed; kept and retried, acks held back');
      for (const j of jobs) this.#jobs.add(j);
      for (const t of tasks) this.#tasks.add(t);
      this.#newTasks = fresh.concat(this.#newTasks);
      for (const [tid, c] of checkpoints) if (!this.#checkpoints.has(tid)) this.#checkpoints.set(tid, c);
      for (const h of hosts) this.#hosts.add(h);
      for (const v of volunteers) this.#volunteers.add(v);
      for (const t of images) this.#images.add(t);
      for (const j of vms) this.#vms.add(j);
      throw error;
    }
    if (this.#failures) this.#log.warn({ failures: this.#failures }, 'store commit succeeded after failing; what was kept is stored');
    this.#failures = 0;
    if (!this.#listeners.size || !jobs.size) return;
    const jobIds = new Set([...jobs].map((j) => j.stored.id));
    for (const listener of this.#listeners) listener(jobIds);
  }
}

const isFinished = (job: JobRun): boolean => job.stored.finishedAt !== null;

function newRowOf(t: TaskRun): NewTask {
  return {
    tid: t.tid,
    jobId: t.job.stored.id,
    index: t.spec.index,
    parent: t.spec.parent,
    root: null,
    name: t.spec.name,
    input: t.spec.input,
    state: t.state,
    attempt: t.attempt,
    hostId: t.hostId,
  };
}
