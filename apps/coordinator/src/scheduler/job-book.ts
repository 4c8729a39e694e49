import { type ErrorBody, type JobSpec, type TaskRef } from '@webpvm/vm-protocol';
import { JobVm, type VmTask } from '@webpvm/task-sdk/vm';
import type { Logger } from 'pino';
import { type StoredJob, type StoredTask, type UnfinishedJob, emptyTally, taskUpdate } from '../store/store.ts';
import type { HostRegistry } from './host-registry.ts';
import { type JobRun, type KeptImage, MAX_LOSSES, type RunState, TERMINAL, type TaskRun, countsOf, lostTooOften, rootsOpen, unrecoverable } from './model.ts';
import type { MigrationSink } from './ports.ts';
import { Quorum } from './quorum.ts';
import { LeaseDeadlines } from './lease-deadlines.ts';
import { Replication } from './replication.ts';
import type { Agree } from './result-agreement.ts';
import { TaskWindow } from './task-window.ts';
import type { WriteBehind } from './write-behind.ts';

export interface JobBookOptions {
  now: () => number;
  /** For deadlines, leases and migration latencies (SchedulerOptions `monotonic`). */
  monotonic: () => number;
  log: Logger;
  writes: WriteBehind;
  hosts: HostRegistry;
  migrations: MigrationSink | undefined;
  /** Tasks were queued or slots freed: leasing should look again. */
  dispatch: () => void;
  /** A task ended for good (done, failed or cancelled): its job's virtual machine and the relay hear of it. */
  ended: (task: TaskRun) => void;
  /** Root tasks still pending in the store, for a job's task window (Store.pendingRoots). */
  pendingRoots: (jobId: string, from: number, until: number, limit: number) => Promise<StoredTask[]>;
  /** Root tasks waiting for their first attempt that a job holds in memory at most. */
  windowTasks: number;
  /** The shortest lease of a bag task whose job sets no taskTimeoutMs (lease-deadlines.ts). */
  leaseFloorMs: number;
  /** How two results of a replicated job's tasks agree (validators.ts). */
  agreement: (job: StoredJob) => Agree;
  /** A job finished: what it alone held (its program's validate) may go. */
  finished?: (job: JobRun) => void;
  /** A task's host was lost and the task will start again from its restart point: its senders must send again (recovery.ts). */
  restarted?: (task: TaskRun) => void;
  /** Whether a trusted volunteer's replica is a spot check: drawn against the job's `spotCheck` (Math.random). */
  random?: () => number;
}

/** The tasks a restart finds not ended: its pending roots and the tasks it holds in memory. */
/** Images kept as restart points of migrated tasks, all jobs together: past it, a task migrating through here restarts from its checkpoint. */
const IMAGES_HELD_BYTES = 1024 * 1024 * 1024;

function* liveIndexes(pendingRoots: Uint32Array, tasks: readonly StoredTask[]): Iterable<number> {
  yield* pendingRoots;
  for (const t of tasks) yield t.index;
}

/**
 * The job book: every job and task this coordinator holds, their states and the transitions
 * between them — queued, leased, retried, finished, cancelled — with the counts and progress the
 * views read. What a state change must write is marked for the store (write-behind.ts).
 *
 * A job's tasks are not all in memory (model.ts, JobRun): root tasks wait in the store until
 * the job's task window reads them in, and a task that ended leaves memory once its end is
 * stored, as a finished job does.
 */
export class JobBook {
  readonly #jobs = new Map<string, JobRun>();
  /** Jobs not finished: the only ones leasing looks at. */
  readonly active = new Set<JobRun>();
  readonly #tasks = new Map<string, TaskRun>();
  readonly #opts: JobBookOptions;

  /** Its replicated tasks' replicas, ballots and trust (replication.ts). */
  readonly replication: Replication;
  /** Running attempts' deadlines and leases (lease-deadlines.ts). */
  readonly deadlines: LeaseDeadlines;
  /** Tasks running per owner, over all its jobs: against its running quota (leasing.ts). */
  readonly #runningByOwner = new Map<string, number>();
  /** Bytes of the images kept as tasks' restart points (`keepImage`), all jobs together. */
  #imageBytes = 0;

  constructor(opts: JobBookOptions) {
    this.#opts = opts;
    const { hosts, log, monotonic, dispatch, random } = opts;
    this.deadlines = new LeaseDeadlines({
      monotonic,
      hosts,
      floorMs: opts.leaseFloorMs,
      actions: {
        failed: (task, error, by) => this.failAttempt(task, error, by),
        lost: (ref, reason, by) => this.lost(ref, reason, by),
        replicas: (task, at) => this.replication.expire(task, at),
        dispatch,
      },
    });
    this.replication = new Replication(this, this.deadlines, { hosts, log, monotonic, dispatch, ...(random ? { random } : {}) });
  }

  /** A job in memory: unfinished, or finished and not stored yet. */
  job(jobId: string): JobRun | undefined {
    return this.#jobs.get(jobId);
  }

  /** A task in memory: see JobRun for which ones are. */
  task(tid: string): TaskRun | undefined {
    return this.#tasks.get(tid);
  }

  /** The task, when `attempt` is the one running on `hostId` now (for a replicated task: one of its replicas out). */
  runningOn(hostId: string, tid: string, attempt: number): TaskRun | null {
    const task = this.#tasks.get(tid);
    if (!task || task.state !== 'running') return null;
    if (task.quorum) return task.quorum.out.has(attempt) && task.runs.get(attempt) === hostId ? task : null;
    return task.attempt === attempt && task.hostId === hostId ? task : null;
  }

  get size(): { jobs: number; tasks: number } {
    return { jobs: this.#jobs.size, tasks: this.#tasks.size };
  }

  /** A new job of `owner`, whose tasks run at most `ownerRunning` at once over all its jobs (its token's quota). */
  submit(spec: JobSpec, programHash: string, owner: string, id: string, ownerRunning: number | null = null): JobRun {
    const job = this.#newJob({
      id,
      owner,
      name: spec.name,
      options: {
        kind: spec.inputs ? 'bag' : 'main',
        roots: 0,
        replicas: spec.replicas,
        quorum: spec.quorum,
        tolerance: spec.tolerance,
        adaptive: spec.adaptive,
        spotCheck: spec.spotCheck,
        distinct: spec.distinct,
        maxAttempts: spec.maxAttempts,
        taskTimeoutMs: spec.taskTimeoutMs,
        priority: spec.priority,
        seed: spec.seed,
        ownerRunning,
      },
      programHash,
      state: 'queued',
      total: 0,
      open: spec.open,
      tally: emptyTally(),
      createdAt: this.#opts.now(),
      finishedAt: null,
      error: null,
      attempts: 0,
      migrations: 0,
    });
    this.append(job, spec.inputs ?? [spec.main]);
    return job;
  }

  /**
   * New root tasks, one per input, numbered after the job's tasks. They are written, not held:
   * the job's window reads them in once they are stored.
   */
  append(job: JobRun, inputs: readonly unknown[]): void {
    const { stored, vm } = job;
    for (const input of inputs) {
      const task = vm.add(input ?? null, null, null);
      const root = stored.options.roots++;
      this.#opts.writes.newRow({ tid: task.tid, jobId: stored.id, index: task.index, parent: null, root, name: null, input: task.input, state: 'pending', attempt: 0, hostId: null });
    }
    stored.total += inputs.length;
    this.#opts.writes.job(job);
    const upTo = vm.size;
    this.#opts.writes.schedule(() => job.window.durable(upTo));
  }

  /** The job takes no more inputs: it ends once its root tasks have. */
  close(job: JobRun): void {
    if (!job.stored.open) return;
    job.stored.open = false;
    this.#opts.writes.job(job);
    this.#opts.writes.schedule();
    this.#finishIfComplete(job);
  }

  /**
   * Unfinished jobs after a restart. Tasks that were running stay assigned to their host, which
   * may come back and claim them; spawned tasks not ended are placed again; pending root tasks
   * stay in the store, for the window to read in.
   */
  restore(unfinished: UnfinishedJob[]): void {
    for (const { job: stored, tasks, pendingRoots, endedBadly, spawned, vmState } of unfinished) {
      const job = this.#newJob(stored);
      job.vm.restore(stored.total, spawned, liveIndexes(pendingRoots, tasks), endedBadly);
      if (vmState) job.vm.restoreState(vmState);
      job.progressSum = stored.tally.done;
      const running: number[] = [];
      for (const t of tasks) {
        const task = this.#newTask(job, job.vm.describe(t.index, t.input, t.parent, t.name));
        Object.assign(task, taskUpdate(t));
        task.start.checkpoint = t.checkpoint;
        if (t.image && !this.keepImage(task, t.image)) this.#opts.log.warn({ tid: task.tid }, 'no room for its stored image: it restarts from its checkpoint');
        if (t.kept) this.keepImage(task, null, t.kept);
        if (task.state === 'pending') {
          job.placeNow.push(task);
          continue;
        }
        job.running++;
        this.#countRunning(job.stored.owner, 1);
        if (t.parent === null) running.push(t.index);
        if (task.hostId) {
          task.assignmentSent = true;
          task.runs.set(task.attempt, task.hostId);
          task.ranOn.add(task.hostId);
          job.ranOn.add(task.hostId);
          this.#opts.hosts.known(task.hostId).assigned.set(task.tid, task.attempt);
          this.deadlines.start(task);
        }
        if (task.quorum) this.replication.restored(task);
      }
      job.window.restored(stored.total, running);
    }
    for (const job of this.#jobs.values()) this.#finishIfComplete(job);
    this.#opts.dispatch();
  }

  /** Tasks a task of the job spawned: they start at once, before any other. */
  spawned(job: JobRun, specs: VmTask[]): void {
    for (const spec of specs) {
      const task = this.#newTask(job, spec);
      job.placeNow.push(task);
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
    if (job.stored.finishedAt !== null) return job;
    const byHost = new Map<string, TaskRef[]>();
    for (const task of [...job.resident]) {
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
    // What is still pending now are root tasks only the store holds: they end here, and their rows after.
    const { pending } = countsOf(job);
    job.stored.tally.cancelled += pending;
    job.stored.tally.rootsEnded += pending;
    this.#finish(job, 'cancelled', null);
    if (pending) this.#opts.writes.schedule(() => this.#opts.writes.sweep(jobId));
    this.#opts.dispatch();
    return job;
  }

  transition(task: TaskRun, state: RunState): void {
    const job = task.job;
    const before = task.state === 'running' ? task.progress : 0;
    const after = state === 'done' ? 1 : 0;
    job.progressSum += after - before;
    if (task.state === 'running') {
      job.running--;
      this.#countRunning(job.stored.owner, -1);
    }
    if (state === 'running') {
      job.running++;
      this.#countRunning(job.stored.owner, 1);
    }
    task.progress = 0;
    task.state = state;
    if (state !== 'running') this.deadlines.stop(task);
    this.#opts.writes.task(task);
    if (TERMINAL.has(state)) this.#ended(task, state as 'done' | 'failed' | 'cancelled');
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

  /** The task fails for good with `error`, and its job ends if that was its last. */
  fail(task: TaskRun, error: ErrorBody): void {
    task.error = error;
    this.transition(task, 'failed');
    this.#finishIfComplete(task.job);
  }

  /** Tasks of `owner`'s jobs running now. */
  runningOf(owner: string): number {
    return this.#runningByOwner.get(owner) ?? 0;
  }

  #countRunning(owner: string, change: 1 | -1): void {
    const now = (this.#runningByOwner.get(owner) ?? 0) + change;
    if (now > 0) this.#runningByOwner.set(owner, now);
    else this.#runningByOwner.delete(owner);
  }

  /**
   * The image `task` restarts from, which came through here as it migrated or checkpointed (null:
   * none), or `kept` by another volunteer's host (kept-images.ts). An image held here is kept
   * until the task's next checkpoint or its end, IMAGES_HELD_BYTES in all; false when there is no
   * room for it (the task then restarts from its checkpoint). A kept image it replaces is
   * forgotten by its keeper.
   */
  keepImage(task: TaskRun, image: Uint8Array | null, kept: KeptImage | null = null): boolean {
    const before = task.start.image?.byteLength ?? 0;
    const after = image?.byteLength ?? 0;
    if (after > 0 && this.#imageBytes - before + after > IMAGES_HELD_BYTES) return false;
    this.#imageBytes += after - before;
    const was = task.start.kept;
    if (task.start.image !== image || was !== kept) this.#opts.writes.image(task);
    task.start.image = image;
    task.start.kept = kept;
    const oldKeeper = was && this.#opts.hosts.get(was.hostId);
    if (oldKeeper && was.hostId !== kept?.hostId) {
      oldKeeper.kept.delete(task.tid);
      oldKeeper.link?.send({ type: 'forget-images', tids: [task.tid] });
    }
    if (kept) this.#opts.hosts.known(kept.hostId).kept.set(task.tid, kept.bytes);
    return true;
  }

  /** An attempt ended in an error, on a host of volunteer `by`: its retry goes to another while one is connected (leasing.ts). */
  failAttempt(task: TaskRun, error: ErrorBody, by: string | null): void {
    task.avoid.add(by);
    this.recordMigration(task, null);
    task.error = error;
    task.failures++;
    if (task.failures < task.job.stored.options.maxAttempts) this.#retry(task);
    else this.fail(task, error);
  }

  /**
   * The host could not run the attempt, and says so (`E_HOST_FAULT`): the task's image never came
   * whole or does not decode, or the host's sandbox would not start. A loss, not a failure (for a
   * replica: no ballot, another replica instead); the next attempt starts from the checkpoint kept
   * here.
   */
  hostFault(task: TaskRun, attempt: number, error: ErrorBody, by: string | null): void {
    const reason = `${error.code}: ${error.message}`;
    if (task.quorum) return this.replication.lost(task, attempt, reason);
    task.runs.delete(attempt);
    if (attempt !== task.attempt) return;
    // The image that failed goes; an image kept here behind one that went host to host stays.
    if (task.start.imageAway) task.start.imageAway = null;
    // A kept image its keeper was slow to give back is asked for again by the next attempt.
    else if (!task.start.kept) this.keepImage(task, null);
    this.lost({ tid: task.tid, attempt }, reason, by);
  }

  /**
   * The attempt was lost with its host: the tab closed, crashed or went silent. That is the
   * host's doing, not the task's, and does not count toward maxAttempts — a volunteer who drops
   * connections cannot fail a researcher's job. A task lost MAX_LOSSES times fails all the same:
   * one that kills every tab it runs on must not go round the grid forever. Its run stays known,
   * so a result the host kept while offline still counts. Its retry goes to another volunteer
   * than `by` while one is connected (leasing.ts).
   */
  lost(ref: TaskRef, reason: string, by: string | null): void {
    const task = this.#tasks.get(ref.tid);
    if (task?.quorum) return this.replication.lost(task, ref.attempt, reason);
    if (!task || task.state !== 'running' || task.attempt !== ref.attempt) return;
    task.avoid.add(by);
    this.recordMigration(task, null);
    if (task.unlogged) return this.fail(task, unrecoverable(task, reason));
    if (++task.losses >= MAX_LOSSES) return this.fail(task, lostTooOften(task, reason));
    this.#opts.log.info({ tid: task.tid, attempt: task.attempt, reason }, 'reissuing task');
    task.recovering = true;
    this.#retry(task);
    this.#opts.restarted?.(task);
  }

  /** A spawned task runs beside the others of its program, beyond slots, as it did the first time (leasing.ts). */
  #retry(task: TaskRun): void {
    this.transition(task, 'pending');
    task.hostId = null;
    if (task.spec.parent === null) task.job.retries.push(task);
    else task.job.placeNow.push(task);
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
      latencyMs: to === null ? null : this.#opts.monotonic() - m.began,
      bytes: m.bytes,
      path: m.via,
      frozen: m.frozen,
    });
  }

  /**
   * The task ended for good: the job's tally counts it (a root's outcome gets the next completion
   * cursor), and once that is stored it leaves memory.
   */
  #ended(task: TaskRun, state: 'done' | 'failed' | 'cancelled'): void {
    const { job } = task;
    const { tally } = job.stored;
    tally[state]++;
    if (task.spec.parent === null) {
      tally.rootsEnded++;
      if (state === 'failed') {
        tally.rootsFailed++;
        tally.firstFailure ??= task.error?.message ?? 'unknown error';
      }
      if (state !== 'cancelled') task.seq = ++tally.resultSeq;
    }
    this.#opts.writes.job(job);
    if (task.quorum) this.replication.verifyLeftovers(job);
    // A task that ends before running again elsewhere still had its migration.
    this.recordMigration(task, null);
    this.keepImage(task, null);
    this.#opts.ended(task);
    this.#opts.writes.schedule(() => {
      this.#tasks.delete(task.tid);
      job.resident.delete(task);
    });
  }

  /**
   * A job ends when its root tasks have ended and it takes no more inputs; spawned tasks still
   * running then (a worker still waiting in recv) are cancelled. Its state is `failed` when a
   * root task failed.
   */
  #finishIfComplete(job: JobRun): void {
    if (job.stored.finishedAt !== null || job.stored.open || rootsOpen(job) > 0) return;
    for (const task of [...job.resident]) {
      if (TERMINAL.has(task.state)) continue;
      for (const [attempt, hostId] of task.runs) {
        this.#opts.hosts.release(hostId, task.tid);
        this.#opts.hosts.sendCancel(hostId, [{ tid: task.tid, attempt }], 'its job ended');
      }
      this.transition(task, 'cancelled');
    }
    const { rootsFailed, firstFailure } = job.stored.tally;
    if (!rootsFailed) return this.#finish(job, 'done', null);
    this.#finish(job, 'failed', {
      code: 'E_TASK_FAILED',
      message: `${rootsFailed} of ${job.stored.options.roots} tasks failed; first: ${firstFailure ?? 'unknown error'}`,
    });
  }

  #finish(job: JobRun, state: 'done' | 'failed' | 'cancelled', error: ErrorBody | null): void {
    job.stored.state = state;
    job.stored.finishedAt = this.#opts.now();
    // Its PVM services' state goes with it (write-behind.ts forgets a finished job's).
    this.#opts.writes.vm(job);
    job.stored.open = false;
    job.stored.error = error;
    this.active.delete(job);
    job.window.close();
    job.retries = [];
    job.placeNow = [];
    job.replicas = [];
    this.#opts.writes.job(job);
    this.#opts.log.info({ job: job.stored.id, state }, 'job finished');
    this.#opts.finished?.(job);
    // Once stored, the finished job leaves memory: it is read from the store.
    this.#opts.writes.schedule(() => this.#jobs.delete(job.stored.id));
  }

  #newJob(stored: StoredJob): JobRun {
    const job: JobRun = {
      stored,
      vm: new JobVm(stored.id, stored.options.seed),
      resident: new Set(),
      window: new TaskWindow(this.#opts.windowTasks, {
        read: (from, until, limit) => this.#opts.pendingRoots(stored.id, from, until, limit),
        admit: (row) => this.#admit(job, row),
        more: this.#opts.dispatch,
        failed: (error) => this.#opts.log.error({ err: error, job: stored.id }, 'reading pending tasks failed; retrying'),
      }),
      retries: [],
      placeNow: [],
      replicas: [],
      provisional: 0,
      agree: this.#opts.agreement(stored),
      running: 0,
      progressSum: 0,
      leaseToOutcomeMs: null,
      ranOn: new Set(),
    };
    this.#jobs.set(stored.id, job);
    this.active.add(job);
    return job;
  }

  /**
   * A pending root task read in from its row. One that ran before (a retry a restart left
   * pending) goes on from its last attempt, its counts of failures and losses, and its checkpoint.
   */
  #admit(job: JobRun, row: StoredTask): TaskRun {
    const task = this.#newTask(job, job.vm.describe(row.index, row.input, null, row.name));
    task.attempt = row.attempt;
    task.failures = row.failures;
    task.losses = row.losses;
    task.error = row.error;
    task.start.checkpoint = row.checkpoint;
    return task;
  }

  /** A root task of a job with `replicas > 1` runs as replicas that must agree; at most twice as many and one more are given out. */
  #quorumFor(job: JobRun, spec: VmTask): Quorum | null {
    const { kind, replicas, quorum } = job.stored.options;
    if (kind !== 'bag' || spec.parent !== null || replicas < 2) return null;
    return new Quorum(quorum, replicas, 2 * replicas + 1, job.agree);
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
      losses: 0,
      recovering: false,
      assignmentSent: false,
      unlogged: false,
      avoid: new Set(),
      askedBack: null,
      quorum: this.#quorumFor(job, spec),
      deadline: null,
      leasedAt: 0,
      aliveAt: 0,
      progress: 0,
      result: null,
      error: null,
      messagesIn: 0,
      messagesOut: 0,
      seq: null,
      lastSent: new Map(),
      ranOn: new Set(),
      start: { checkpoint: null, image: null, imageAway: null, kept: null },
      migration: null,
    };
    job.resident.add(task);
    this.#tasks.set(task.tid, task);
    return task;
  }
}
