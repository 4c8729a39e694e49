import { type ErrorBody, type JobSpec, type TaskRef } from '@webpvm/vm-protocol';
import { JobVm, type VmTask } from '@webpvm/task-sdk/vm';
import type { Logger } from 'pino';
import { type StoredJob, type StoredTask, taskUpdate } from '../store/store.ts';
import type { HostRegistry } from './host-registry.ts';
import { type JobRun, type RunState, TERMINAL, type TaskRun } from './model.ts';
import type { MigrationSink } from './ports.ts';
import type { WriteBehind } from './write-behind.ts';

export interface JobBookOptions {
  now: () => number;
  log: Logger;
  writes: WriteBehind;
  hosts: HostRegistry;
  migrations: MigrationSink | undefined;
  /** Tasks were queued or slots freed: leasing should look again. */
  dispatch: () => void;
  /** A task ended for good (done, failed or cancelled): its job's virtual machine and the relay hear of it. */
  ended: (task: TaskRun) => void;
}

/**
 * The job book: every job and task this coordinator holds, their states and the transitions
 * between them — queued, leased, retried, finished, cancelled — with the counts and progress the
 * views read. What a state change must write is marked for the store (write-behind.ts).
 */
export class JobBook {
  readonly #jobs = new Map<string, JobRun>();
  /** Jobs not finished: the only ones leasing looks at. */
  readonly active = new Set<JobRun>();
  readonly #tasks = new Map<string, TaskRun>();
  /** Running attempts with a deadline (taskTimeoutMs). */
  readonly #timed = new Set<TaskRun>();
  readonly #opts: JobBookOptions;

  constructor(opts: JobBookOptions) {
    this.#opts = opts;
  }

  /** A job still in memory: unfinished, or finished since this process started. */
  job(jobId: string): JobRun | undefined {
    return this.#jobs.get(jobId);
  }

  task(tid: string): TaskRun | undefined {
    return this.#tasks.get(tid);
  }

  /** The task, when `attempt` is the one running on `hostId` now. */
  runningOn(hostId: string, tid: string, attempt: number): TaskRun | null {
    const task = this.#tasks.get(tid);
    return task && task.state === 'running' && task.attempt === attempt && task.hostId === hostId ? task : null;
  }

  get size(): { jobs: number; tasks: number } {
    return { jobs: this.#jobs.size, tasks: this.#tasks.size };
  }

  submit(spec: JobSpec, programHash: string, owner: string, id: string): JobRun {
    const inputs = spec.inputs ?? [spec.main];
    const job = this.#newJob({
      id,
      owner,
      name: spec.name,
      options: {
        kind: spec.inputs ? 'bag' : 'main',
        roots: inputs.length,
        replicas: spec.replicas,
        quorum: spec.quorum,
        maxAttempts: spec.maxAttempts,
        taskTimeoutMs: spec.taskTimeoutMs,
        priority: spec.priority,
        seed: spec.seed,
      },
      programHash,
      state: 'queued',
      total: inputs.length,
      createdAt: this.#opts.now(),
      finishedAt: null,
      error: null,
      attempts: 0,
      migrations: 0,
    });
    for (const input of inputs) {
      const task = this.#newTask(job, job.vm.add(input ?? null, null, null));
      job.queue.push(task);
      this.#opts.writes.newTask(task);
    }
    job.counts.pending = inputs.length;
    job.rootsOpen = inputs.length;
    this.#opts.writes.job(job);
    this.#opts.writes.schedule();
    this.#opts.dispatch();
    return job;
  }

  /**
   * Unfinished jobs after a restart, with their tasks in index order. Tasks that were running
   * stay assigned to their host, which may come back and claim them.
   */
  restore(jobs: StoredJob[], tasks: StoredTask[]): void {
    for (const stored of jobs) this.#newJob(stored);
    for (const t of tasks) {
      const job = this.#jobs.get(t.jobId);
      if (!job?.tasks) continue;
      const task = this.#newTask(job, job.vm.add(t.input, t.parent, t.name));
      Object.assign(task, taskUpdate(t));
      task.start.checkpoint = t.checkpoint;
      job.counts[task.state]++;
      if (TERMINAL.has(task.state)) job.vm.ended(task.tid, task.state === 'done', task.lastSent);
      else if (task.spec.parent === null) job.rootsOpen++;
      if (task.state === 'done') job.progressSum += 1;
      if (task.state === 'pending') (task.spec.parent === null ? job.queue : job.placeNow).push(task);
      if (task.state === 'running' && task.hostId) {
        task.runs.set(task.attempt, task.hostId);
        this.#opts.hosts.known(task.hostId).assigned.set(task.tid, task.attempt);
        this.startDeadline(task);
      }
    }
    for (const job of this.#jobs.values()) this.#finishIfComplete(job);
  }

  /** Tasks a task of the job spawned: they start at once, before any other. */
  spawned(job: JobRun, specs: VmTask[]): void {
    for (const spec of specs) {
      const task = this.#newTask(job, spec);
      job.placeNow.push(task);
      job.counts.pending++;
      this.#opts.writes.newTask(task);
    }
    job.stored.total += specs.length;
    this.#opts.writes.job(job);
    this.#opts.writes.schedule();
    this.#opts.dispatch();
  }

  cancel(jobId: string): JobRun | null {
    const job = this.#jobs.get(jobId);
    if (!job) return null;
    if (job.stored.state !== 'queued' && job.stored.state !== 'running') return job;
    const byHost = new Map<string, TaskRef[]>();
    for (const task of job.tasks ?? []) {
      if (TERMINAL.has(task.state)) continue;
      for (const [attempt, hostId] of task.runs) {
        this.#opts.hosts.release(hostId, task.tid);
        const refs = byHost.get(hostId) ?? [];
        refs.push({ tid: task.tid, attempt });
        byHost.set(hostId, refs);
      }
      this.transition(task, 'cancelled');
    }
    for (const [hostId, refs] of byHost) this.#opts.hosts.sendCancel(hostId, refs, 'job cancelled');
    job.queue = [];
    job.queueHead = 0;
    job.retries = [];
    job.placeNow = [];
    this.#finish(job, 'cancelled', null);
    this.#opts.dispatch();
    return job;
  }

  transition(task: TaskRun, state: RunState): void {
    const job = task.job;
    job.counts[task.state]--;
    job.counts[state]++;
    const before = task.state === 'done' ? 1 : task.state === 'running' ? task.progress : 0;
    const after = state === 'done' ? 1 : 0;
    job.progressSum += after - before;
    task.progress = 0;
    task.state = state;
    if (state !== 'running') {
      task.deadline = null;
      this.#timed.delete(task);
    }
    this.#opts.writes.task(task);
    if (TERMINAL.has(state)) {
      // A task that ends before running again elsewhere still had its migration.
      this.recordMigration(task, null);
      task.start.image = null;
      if (task.spec.parent === null) job.rootsOpen--;
      this.#opts.ended(task);
    }
  }

  startDeadline(task: TaskRun): void {
    const timeout = task.job.stored.options.taskTimeoutMs;
    if (timeout === null) return;
    task.deadline = this.#opts.now() + timeout;
    this.#timed.add(task);
  }

  /** Attempts past their deadline are withdrawn from their hosts and count as failed. */
  expireDeadlines(): void {
    const now = this.#opts.now();
    for (const task of this.#timed) {
      if (task.deadline === null || task.deadline > now) continue;
      if (task.hostId) this.#opts.hosts.sendCancel(task.hostId, [{ tid: task.tid, attempt: task.attempt }], 'deadline passed');
      this.#opts.hosts.release(task.hostId, task.tid);
      task.runs.delete(task.attempt);
      this.failAttempt(task, { code: 'E_TASK_TIMEOUT', message: `attempt ${task.attempt} exceeded ${task.job.stored.options.taskTimeoutMs} ms` });
    }
    this.#opts.dispatch();
  }

  complete(task: TaskRun, value: unknown): void {
    for (const [attempt, hostId] of task.runs) {
      this.#opts.hosts.release(hostId, task.tid);
      this.#opts.hosts.sendCancel(hostId, [{ tid: task.tid, attempt }], 'another attempt finished first');
    }
    task.runs.clear();
    task.result = value ?? null;
    task.error = null;
    this.transition(task, 'done');
    this.#finishIfComplete(task.job);
  }

  failAttempt(task: TaskRun, error: ErrorBody): void {
    this.recordMigration(task, null);
    // An image its host could not take (it never came whole, or does not decode): the next attempt starts from the checkpoint.
    if (error.code === 'E_BAD_FRAME') {
      task.start.image = null;
      task.start.imageAway = null;
    }
    task.error = error;
    task.failures++;
    if (task.failures < task.job.stored.options.maxAttempts) {
      this.transition(task, 'pending');
      task.hostId = null;
      task.job.retries.push(task);
    } else {
      this.transition(task, 'failed');
      this.#finishIfComplete(task.job);
    }
  }

  /**
   * The attempt was lost with its host. A lost attempt counts toward maxAttempts: a task that
   * kills its tab every time must not loop forever. Its run stays known, so a result the host
   * kept while offline still counts.
   */
  lost(ref: TaskRef, reason: string): void {
    const task = this.#tasks.get(ref.tid);
    if (!task || task.state !== 'running' || task.attempt !== ref.attempt) return;
    this.#opts.log.info({ tid: task.tid, attempt: task.attempt, reason }, 'reissuing task');
    this.failAttempt(task, { code: 'E_INTERNAL', message: reason });
  }

  /** The task's migration is over: it runs again on `to`, or (null) it ended or failed first. */
  recordMigration(task: TaskRun, to: string | null): void {
    const m = task.migration;
    if (!m) return;
    task.migration = null;
    task.job.stored.migrations++;
    this.#opts.writes.job(task.job);
    this.#opts.writes.schedule();
    this.#opts.migrations?.record({
      type: 'migration',
      jobId: task.job.stored.id,
      tid: task.tid,
      reason: m.reason,
      from: m.from,
      to,
      at: new Date(m.since).toISOString(),
      obtrusivenessMs: m.obtrusivenessMs,
      latencyMs: to === null ? null : this.#opts.now() - m.since,
      bytes: m.bytes,
      path: m.via,
      frozen: m.frozen,
    });
  }

  /**
   * A job ends when its root tasks have ended; spawned tasks still running then (a worker still
   * waiting in recv) are cancelled. Its state is `failed` when a root task failed.
   */
  #finishIfComplete(job: JobRun): void {
    if (job.stored.finishedAt !== null || !job.tasks || job.rootsOpen > 0) return;
    const roots = job.tasks.slice(0, job.stored.options.roots);
    const leftovers = job.tasks.slice(job.stored.options.roots).filter((t) => !TERMINAL.has(t.state));
    for (const task of leftovers) {
      for (const [attempt, hostId] of task.runs) {
        this.#opts.hosts.release(hostId, task.tid);
        this.#opts.hosts.sendCancel(hostId, [{ tid: task.tid, attempt }], 'its job ended');
      }
      this.transition(task, 'cancelled');
    }
    job.placeNow = [];
    const failed = roots.filter((t) => t.state === 'failed');
    if (!failed.length) return this.#finish(job, 'done', null);
    this.#finish(job, 'failed', {
      code: 'E_TASK_FAILED',
      message: `${failed.length} of ${roots.length} tasks failed; first: ${failed[0]!.error?.message ?? 'unknown error'}`,
    });
  }

  #finish(job: JobRun, state: 'done' | 'failed' | 'cancelled', error: ErrorBody | null): void {
    job.stored.state = state;
    job.stored.finishedAt = this.#opts.now();
    this.active.delete(job);
    job.stored.error = error;
    this.#opts.writes.job(job);
    this.#opts.log.info({ job: job.stored.id, state }, 'job finished');
    // Once stored, the finished job's tasks leave memory; its results are read from the store.
    this.#opts.writes.schedule(() => {
      for (const task of job.tasks ?? []) this.#tasks.delete(task.tid);
      job.tasks = null;
    });
  }

  #newJob(stored: StoredJob): JobRun {
    const job: JobRun = {
      stored,
      vm: new JobVm(stored.id, stored.options.seed),
      tasks: new Array<TaskRun>(stored.total),
      queue: [],
      queueHead: 0,
      retries: [],
      placeNow: [],
      rootsOpen: 0,
      counts: { pending: 0, running: 0, done: 0, failed: 0, cancelled: 0 },
      progressSum: 0,
    };
    this.#jobs.set(stored.id, job);
    this.active.add(job);
    return job;
  }

  #newTask(job: JobRun, spec: VmTask): TaskRun {
    const task: TaskRun = {
      tid: spec.tid,
      spec,
      job,
      state: 'pending',
      attempt: 0,
      hostId: null,
      runs: new Map(),
      failures: 0,
      deadline: null,
      progress: 0,
      result: null,
      error: null,
      messagesIn: 0,
      messagesOut: 0,
      lastSent: new Map(),
      ranOn: new Set(),
      start: { checkpoint: null, image: null, imageAway: null },
      migration: null,
    };
    job.tasks![spec.index] = task;
    this.#tasks.set(task.tid, task);
    return task;
  }
}
