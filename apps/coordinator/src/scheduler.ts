import {
  ImageAssembly,
  imageParts,
  type Checkpoint,
  type CoordinatorMessage,
  type ErrorBody,
  type JobSpec,
  type JobStatus,
  type MigrationEvent,
  type MigrationReason,
  LIMITS,
  type TaskAssignment,
  type TaskOp,
  type TaskOutcome,
  type TaskRef,
  type HostMessageOf,
  encodeMessage,
  makeTid,
} from '@webpvm/vm-protocol';
import type { Logger } from 'pino';
import { MessageRouter, type Whereabouts } from './message-router.ts';
import { TaskGroups } from '@webpvm/task-sdk/groups';
import type { Store, StoredHost, StoredJob, StoredTask, TaskUpdate, WriteBatch } from './store/store.ts';
import { WriteQueue } from './write-queue.ts';

/** How the scheduler talks to one connected host; the gateway owns the socket. */
export interface HostLink {
  send(message: CoordinatorMessage): void;
  /** A message envelope (vm-protocol envelope.ts), relayed as a binary frame. */
  sendBinary(bytes: Uint8Array): void;
}

/** What a task request answers: a value, an error, or nothing yet (a barrier answers on release). */
export type RequestOutcome = { ok: true; value: unknown } | { ok: false; error: ErrorBody } | 'later';

type RunState = 'pending' | 'running' | 'done' | 'failed' | 'cancelled';

interface TaskRun {
  tid: string;
  job: JobRun;
  index: number;
  parent: string | null;
  name: string | null;
  input: unknown;
  state: RunState;
  attempt: number;
  hostId: string | null;
  result: unknown;
  error: ErrorBody | null;
  checkpoint: Checkpoint | null;
  progress: number;
  deadline: number | null;
  /** Hosts of the attempts that may still report an outcome. */
  runs: Map<number, string>;
  messagesIn: number;
  messagesOut: number;
  /** The last seq this task sent to each receiver, from its outcome: exit notifications follow them. */
  lastSent: Map<string, number>;
  /**
   * requestId → the answer given, so that a request sent again (after a reconnect, or by a task
   * replaying from a checkpoint) gets the same answer — the same tids from the same spawn — and
   * is not carried out twice.
   */
  answers: Map<number, RequestOutcome>;
  /** The requestId of the barrier call this task waits in, if any. */
  inBarrier: number | null;
  /** Attempts that failed or were lost: what maxAttempts counts (a migration is not a failure). */
  failures: number;
  /** Every host that ran an attempt: it may still relay messages of the task's job that reach it late. */
  ranOn: Set<string>;
  /**
   * The image the task migrated with (vm-protocol task-image.ts): what its next attempt starts
   * from, until that attempt stores a checkpoint of its own.
   */
  image: Uint8Array | null;
  /** The migration under way, from its event until the task runs again. */
  migration: Migration | null;
  /** The host the task just left: placed elsewhere when another host can take it. */
  avoid: string | null;
  /**
   * An image that went host to host over a data channel: its size, and the host that sent it and
   * keeps it a while, to send it again through the coordinator if it does not arrive.
   */
  imageAway: { bytes: number; from: string } | null;
}

interface Migration {
  reason: MigrationReason;
  from: string;
  /** The host named as its destination at the event, when one could take it. */
  to: string | null;
  via: 'coordinator' | 'channel';
  /** The task has left its old host (`migrated` came): messages no longer wait for it. */
  left: boolean;
  since: number;
  obtrusivenessMs: number;
  frozen: boolean;
  bytes: number;
}

interface JobRun {
  stored: StoredJob;
  /** Null once the job is finished and stored: its results are then read from the store. */
  tasks: TaskRun[] | null;
  queue: TaskRun[];
  queueHead: number;
  /** Tasks to run again go before fresh ones, so a retry is not starved by a long queue. */
  retries: TaskRun[];
  /** Spawned tasks waiting to start: PVM starts them at once, so they are placed before any other. */
  spawned: TaskRun[];
  /** Root tasks not ended yet: the job ends when this reaches 0. */
  rootsOpen: number;
  groups: TaskGroups<{ tid: string; requestId: number }>;
  /** watched tid → who wants a message when it ends (pvm_notify). */
  notifies: Map<string, { notifier: string; tag: number }[]>;
  counts: Record<RunState, number>;
  progressSum: number;
}

interface HostRun {
  hostId: string;
  peerId: string | null;
  link: HostLink | null;
  slots: number;
  userAgent: string;
  secretHash: string;
  createdAt: number;
  connectedAt: number | null;
  lastSeenAt: number;
  done: number;
  /** tid → attempt of the tasks this host holds (running or queued in the page). */
  assigned: Map<string, number>;
  /** Ordered to drain (`POST /api/hosts/:id/drain`): it is given nothing and its tasks move away. */
  draining: boolean;
  /** Tasks per second this host has been completing lately (smoothed). */
  rate: number;
  rateSince: number;
  rateCount: number;
}

/** Where finished migrations are recorded (event-log.ts): the dashboard's timeline and `GET /api/events`. */
export interface MigrationSink {
  record(event: Omit<MigrationEvent, 'id'>): void;
}

export interface SchedulerOptions {
  store: Store;
  log: Logger;
  migrations?: MigrationSink;
  checkpointIntervalMs: number;
  reconnectGraceMs: number;
  programUrl: (hash: string) => string;
  now?: () => number;
}

/**
 * A host holds at least two tasks per slot, so the next task is already there when one ends; a
 * host that finishes tasks quickly holds about PREFETCH_SECONDS of its work, so that tiny tasks
 * travel in batches and the round trip to the coordinator does not bound its throughput.
 */
const PREFETCH_PER_SLOT = 2;
const PREFETCH_SECONDS = 0.25;
const PREFETCH_MAX = 512;
const RATE_WINDOW_MS = 250;

const TERMINAL: ReadonlySet<RunState> = new Set(['done', 'failed', 'cancelled']);

/** Seed of a task's `ctx.random`: fixed per tid, so every attempt and replica draws the same numbers. */
export function seedOf(tid: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < tid.length; i++) {
    h ^= tid.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The global scheduler: the authoritative in-memory picture of jobs, tasks and hosts.
 * It leases pending tasks to free host slots, fairly across jobs by priority, reissues
 * tasks of lost hosts and expired attempts, and writes every change behind to the store.
 */
export class Scheduler {
  private readonly jobs = new Map<string, JobRun>();
  /** Jobs not finished: the only ones leasing looks at. */
  private readonly active = new Set<JobRun>();
  private readonly tasks = new Map<string, TaskRun>();
  private readonly hosts = new Map<string, HostRun>();
  private readonly timed = new Set<TaskRun>();
  private readonly now: () => number;
  private readonly writes: WriteQueue;
  readonly router: MessageRouter;
  /** Images arriving in pieces from hosts whose tasks migrate. */
  private readonly images = new ImageAssembly(LIMITS.imageBytes * 4);
  private dispatchScheduled = false;

  private dirtyJobs = new Set<JobRun>();
  private dirtyTasks = new Set<TaskRun>();
  private newTasks: TaskRun[] = [];
  private dirtyCheckpoints = new Map<string, Checkpoint>();
  private dirtyHosts = new Set<HostRun>();

  constructor(private readonly opts: SchedulerOptions) {
    this.now = opts.now ?? Date.now;
    this.writes = new WriteQueue(
      () => this.commit(),
      (error) => opts.log.error({ err: error }, 'store commit failed; retrying'),
    );
    this.router = new MessageRouter((tid) => this.whereabouts(tid), opts.log);
  }

  /** Resume unfinished jobs after a restart. Tasks that were running wait for their host to come back. */
  async restore(): Promise<void> {
    const { jobs, tasks } = await this.opts.store.loadUnfinished();
    for (const stored of jobs) {
      const job = this.newJobRun(stored);
      this.jobs.set(stored.id, job);
      this.active.add(job);
    }
    for (const t of tasks) {
      const job = this.jobs.get(t.jobId);
      if (!job?.tasks) continue;
      const task = this.newTaskRun(job, t.index, t.input, t.parent, t.name);
      Object.assign(task, {
        state: t.state,
        attempt: t.attempt,
        hostId: t.hostId,
        result: t.result,
        error: t.error,
        checkpoint: t.checkpoint,
        messagesIn: t.messagesIn,
        messagesOut: t.messagesOut,
      });
      job.counts[task.state]++;
      if (task.parent === null && !TERMINAL.has(task.state)) job.rootsOpen++;
      if (task.state === 'done') job.progressSum += 1;
      if (task.state === 'pending') (task.parent === null ? job.queue : job.spawned).push(task);
      if (task.state === 'running' && task.hostId) {
        task.runs.set(task.attempt, task.hostId);
        this.hostFor(task.hostId).assigned.set(task.tid, task.attempt);
        this.startDeadline(task);
      }
    }
    for (const job of this.jobs.values()) this.finishIfComplete(job);
    if (this.tasks.size) this.opts.log.info({ jobs: this.jobs.size, tasks: this.tasks.size }, 'resumed unfinished jobs');
    setTimeout(() => this.reissueUnclaimed(), this.opts.reconnectGraceMs).unref();
  }

  // ------------------------------------------------------------------ jobs

  submit(spec: JobSpec, programHash: string, owner: string, id: string): JobStatus {
    const inputs = spec.inputs ?? [spec.main];
    const stored: StoredJob = {
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
      },
      programHash,
      state: 'queued',
      total: inputs.length,
      createdAt: this.now(),
      finishedAt: null,
      error: null,
      attempts: 0,
      migrations: 0,
    };
    const job = this.newJobRun(stored);
    this.jobs.set(id, job);
    this.active.add(job);
    inputs.forEach((input, index) => {
      const task = this.newTaskRun(job, index, input ?? null, null, null);
      job.queue.push(task);
      this.newTasks.push(task);
    });
    job.counts.pending = inputs.length;
    job.rootsOpen = inputs.length;
    this.dirtyJobs.add(job);
    this.writes.schedule();
    this.scheduleDispatch();
    return this.statusOf(job);
  }

  /** Resolves once everything changed so far is durable (a job is acknowledged only then). */
  durable(): Promise<void> {
    return this.writes.flushed();
  }

  cancel(jobId: string): JobStatus | null {
    const job = this.jobs.get(jobId);
    if (!job) return null;
    if (job.stored.state !== 'queued' && job.stored.state !== 'running') return this.statusOf(job);
    const byHost = new Map<string, TaskRef[]>();
    for (const task of job.tasks ?? []) {
      if (TERMINAL.has(task.state)) continue;
      for (const [attempt, hostId] of task.runs) {
        const host = this.hosts.get(hostId);
        host?.assigned.delete(task.tid);
        const refs = byHost.get(hostId) ?? [];
        refs.push({ tid: task.tid, attempt });
        byHost.set(hostId, refs);
      }
      this.transition(task, 'cancelled');
    }
    for (const [hostId, refs] of byHost) this.sendCancel(hostId, refs, 'job cancelled');
    job.queue = [];
    job.queueHead = 0;
    job.retries = [];
    job.spawned = [];
    this.finish(job, 'cancelled', null);
    this.scheduleDispatch();
    return this.statusOf(job);
  }

  /** Status of a job still in memory (unfinished, or finished since this process started). */
  status(jobId: string): JobStatus | null {
    const job = this.jobs.get(jobId);
    return job ? this.statusOf(job) : null;
  }

  ownerOf(jobId: string): string | null {
    return this.jobs.get(jobId)?.stored.owner ?? null;
  }

  /** Results of a job whose tasks are still in memory; null when they must come from the store. */
  results(jobId: string): unknown[] | null {
    const job = this.jobs.get(jobId);
    if (!job?.tasks) return null;
    return job.tasks.slice(0, job.stored.options.roots).map((t) => (t.state === 'done' ? t.result : null));
  }

  /** The tasks of a job still in memory, for the dashboard; null when they must come from the store. */
  tasksOf(jobId: string) {
    const job = this.jobs.get(jobId);
    if (!job?.tasks) return null;
    return job.tasks.map((t) => ({
      tid: t.tid,
      parent: t.parent,
      state: t.state,
      attempt: t.attempt,
      hostId: t.hostId,
      progress: t.state === 'done' ? 1 : t.progress,
      messagesIn: t.messagesIn,
      messagesOut: t.messagesOut,
    }));
  }

  rootsOf(jobId: string): number | null {
    return this.jobs.get(jobId)?.stored.options.roots ?? null;
  }

  // ------------------------------------------------------------------ hosts

  attachHost(
    host: { hostId: string; secretHash: string; createdAt: number; userAgent: string; peerId: string },
    link: HostLink,
    slots: number,
    running: TaskRef[],
  ): void {
    const run = this.hostFor(host.hostId);
    run.link = link;
    run.peerId = host.peerId;
    run.slots = slots;
    run.userAgent = host.userAgent;
    run.secretHash = host.secretHash;
    run.createdAt = host.createdAt;
    run.connectedAt = this.now();
    run.lastSeenAt = this.now();
    const stillThere = new Map(running.map((r) => [r.tid, r.attempt]));
    const stale: TaskRef[] = [];
    for (const [tid, attempt] of stillThere) {
      if (run.assigned.get(tid) !== attempt) stale.push({ tid, attempt });
    }
    for (const [tid, attempt] of [...run.assigned]) {
      if (stillThere.get(tid) === attempt) continue;
      // The page lost this task (reloaded, or was closed and reopened): run it elsewhere.
      run.assigned.delete(tid);
      const task = this.tasks.get(tid);
      if (task && task.state === 'running' && task.attempt === attempt) this.reissue(task, 'host lost the task');
    }
    if (stale.length) this.sendCancel(host.hostId, stale, 'no longer assigned to this host');
    this.dirtyHosts.add(run);
    this.writes.schedule();
    this.scheduleDispatch();
  }

  detachHost(hostId: string, link: HostLink): void {
    const host = this.hosts.get(hostId);
    if (!host || host.link !== link) return;
    const peerId = host.peerId;
    host.link = null;
    host.peerId = null;
    if (peerId) for (const other of this.hosts.values()) other.link?.send({ type: 'peer-gone', peerId });
    host.connectedAt = null;
    host.lastSeenAt = this.now();
    for (const [tid, attempt] of host.assigned) {
      const task = this.tasks.get(tid);
      if (task && task.state === 'running' && task.attempt === attempt) this.reissue(task, 'host disconnected');
    }
    host.assigned.clear();
    this.dirtyHosts.add(host);
    this.writes.schedule();
    this.scheduleDispatch();
  }

  /** The secret hash of a host known to this process but maybe not yet stored. */
  secretHashOf(hostId: string): string | null {
    return this.hosts.get(hostId)?.secretHash || null;
  }

  seen(hostId: string): void {
    const host = this.hosts.get(hostId);
    if (host) host.lastSeenAt = this.now();
  }

  setSlots(hostId: string, slots: number): void {
    const host = this.hosts.get(hostId);
    if (!host) return;
    host.slots = slots;
    this.scheduleDispatch();
  }

  hostList(): {
    hostId: string;
    connected: boolean;
    draining: boolean;
    slots: number;
    running: number;
    done: number;
    userAgent: string;
    connectedAt: string | null;
    lastSeenAt: string;
  }[] {
    return [...this.hosts.values()].map((h) => ({
      hostId: h.hostId,
      connected: h.link !== null,
      draining: h.draining,
      slots: h.slots,
      running: h.assigned.size,
      done: h.done,
      userAgent: h.userAgent,
      connectedAt: h.connectedAt === null ? null : new Date(h.connectedAt).toISOString(),
      lastSeenAt: new Date(h.lastSeenAt).toISOString(),
    }));
  }

  // ------------------------------------------------------------------ reports from hosts

  /**
   * Task outcomes from a host. Each is acknowledged once stored, so the host can forget it;
   * an outcome for an attempt this host never ran is refused (and also acknowledged: it can never count).
   */
  outcomes(hostId: string, items: TaskOutcome[]): ErrorBody[] {
    const host = this.hosts.get(hostId);
    const refused: ErrorBody[] = [];
    const acks: TaskRef[] = [];
    for (const outcome of items) {
      acks.push({ tid: outcome.tid, attempt: outcome.attempt });
      if (host?.assigned.get(outcome.tid) === outcome.attempt) host.assigned.delete(outcome.tid);
      const task = this.tasks.get(outcome.tid);
      if (!task || TERMINAL.has(task.state)) continue;
      if (task.runs.get(outcome.attempt) !== hostId) {
        refused.push({ code: 'E_NOT_ASSIGNED', message: `${outcome.tid} attempt ${outcome.attempt} is not assigned to this host` });
        continue;
      }
      task.runs.delete(outcome.attempt);
      task.lastSent = new Map((outcome.sent ?? []).map((s) => [s.to, s.seq]));
      if (outcome.ok) {
        if (host) {
          host.done++;
          this.dirtyHosts.add(host);
        }
        this.complete(task, outcome.value);
      } else if (outcome.attempt === task.attempt) {
        this.failAttempt(task, outcome.error);
      }
    }
    if (host) {
      this.measureRate(host, items.length);
      this.writes.schedule(() => host.link?.send({ type: 'ack', tasks: acks }));
    }
    this.scheduleDispatch();
    return refused;
  }

  checkpoint(hostId: string, tid: string, attempt: number, checkpoint: Checkpoint): ErrorBody | null {
    const task = this.tasks.get(tid);
    if (!task || task.state !== 'running' || task.attempt !== attempt || task.hostId !== hostId) {
      return { code: 'E_NOT_ASSIGNED', message: `${tid} attempt ${attempt} is not running on this host` };
    }
    task.checkpoint = checkpoint;
    task.image = null;
    task.imageAway = null;
    this.dirtyCheckpoints.set(tid, checkpoint);
    this.writes.schedule();
    return null;
  }

  progress(
    hostId: string,
    items: { tid: string; attempt: number; fraction: number; messagesIn?: number; messagesOut?: number }[],
  ): void {
    for (const { tid, attempt, fraction, messagesIn, messagesOut } of items) {
      const task = this.tasks.get(tid);
      if (!task || task.state !== 'running' || task.attempt !== attempt || task.hostId !== hostId) continue;
      task.job.progressSum += fraction - task.progress;
      task.progress = fraction;
      if (messagesIn !== undefined) task.messagesIn = messagesIn;
      if (messagesOut !== undefined) task.messagesOut = messagesOut;
    }
  }

  // ------------------------------------------------------------------ the virtual machine's services

  /** A task's request (spawn, groups, barrier, notify); a barrier's answer comes later, through `send`. */
  request(hostId: string, tid: string, attempt: number, requestId: number, op: TaskOp): RequestOutcome {
    const task = this.tasks.get(tid);
    if (!task || task.state !== 'running' || task.attempt !== attempt || task.hostId !== hostId) {
      return { ok: false, error: { code: 'E_NOT_ASSIGNED', message: `${tid} attempt ${attempt} is not running on this host` } };
    }
    const earlier = task.answers.get(requestId);
    if (earlier) return earlier;
    if (task.inBarrier === requestId) return 'later';
    const outcome = this.carryOut(task, requestId, op);
    if (outcome !== 'later') task.answers.set(requestId, outcome);
    return outcome;
  }

  private carryOut(task: TaskRun, requestId: number, op: TaskOp): RequestOutcome {
    const { tid, job } = task;
    switch (op.kind) {
      case 'spawn':
        return this.spawn(task, op.name, op.inputs);
      case 'join':
        return { ok: true, value: job.groups.join(op.group, tid) };
      case 'leave':
        return job.groups.leave(op.group, tid)
          ? { ok: true, value: null }
          : { ok: false, error: { code: 'E_CONFLICT', message: `${tid} is not in group ${op.group}` } };
      case 'size':
        return { ok: true, value: job.groups.size(op.group) };
      case 'members':
        return { ok: true, value: job.groups.members(op.group) };
      case 'barrier': {
        const released = job.groups.barrier(op.group, op.count, { tid, requestId });
        if (released === null) {
          return { ok: false, error: { code: 'E_CONFLICT', message: `barrier ${op.group} is already waiting for another count` } };
        }
        task.inBarrier = requestId;
        for (const waiter of released) {
          const waiting = this.tasks.get(waiter.tid);
          if (!waiting) continue;
          waiting.inBarrier = null;
          waiting.answers.set(waiter.requestId, { ok: true, value: null });
          const holder = this.hosts.get(waiting.hostId ?? '');
          holder?.link?.send({ type: 'reply', tid: waiter.tid, requestId: waiter.requestId, ok: true, value: null });
        }
        return 'later';
      }
      case 'notify': {
        for (const watched of op.tids) {
          if (!watched.startsWith(`${job.stored.id}.`)) {
            return { ok: false, error: { code: 'E_FORBIDDEN', message: `${watched} is not a task of job ${job.stored.id}` } };
          }
        }
        for (const watched of op.tids) {
          const target = this.tasks.get(watched);
          if (target && !TERMINAL.has(target.state)) {
            const list = job.notifies.get(watched) ?? [];
            list.push({ notifier: tid, tag: op.tag });
            job.notifies.set(watched, list);
          } else {
            this.notifyExit(watched, tid, op.tag, target ? target.state === 'done' : false, target?.lastSent.get(tid) ?? 0);
          }
        }
        return { ok: true, value: null };
      }
    }
  }

  // ------------------------------------------------------------------ migration

  /** MPVM's event: these tasks leave their host; messages for them are held here until they run again. */
  migrating(hostId: string, refs: TaskRef[], reason: MigrationReason): void {
    for (const ref of refs) {
      const task = this.runningOn(hostId, ref.tid, ref.attempt);
      if (!task || task.migration) continue;
      const to = this.pickDestination(hostId);
      task.migration = this.newMigration(reason, hostId, to?.hostId ?? null);
      // The image may go straight there, host to host, as the parts of the attempt it will run as.
      this.hosts.get(hostId)?.link?.send({ type: 'destination', tid: task.tid, attempt: task.attempt + 1, peerId: to?.peerId ?? null });
    }
  }

  private newMigration(reason: MigrationReason, from: string, to: string | null): Migration {
    return { reason, from, to, via: 'coordinator', left: false, since: this.now(), obtrusivenessMs: 0, frozen: false, bytes: 0 };
  }

  /** The least loaded other host that could take a task now. */
  private pickDestination(leaving: string): HostRun | null {
    let best: HostRun | null = null;
    for (const h of this.hosts.values()) {
      if (h.hostId === leaving || !h.link || h.slots === 0 || h.draining) continue;
      if (!best || h.assigned.size / h.slots < best.assigned.size / best.slots) best = h;
    }
    return best;
  }

  /**
   * A piece of the image of a task leaving this host; or, from a host the task ran on, a piece
   * of an image that did not arrive over a data channel, handed on to the task's host now.
   */
  imagePart(
    hostId: string,
    header: { tid: string; attempt: number; index: number; count: number },
    piece: Uint8Array,
    frame: Uint8Array,
  ): ErrorBody | null {
    if (this.runningOn(hostId, header.tid, header.attempt)) return this.images.add(header, piece);
    const task = this.tasks.get(header.tid);
    const holder = task?.state === 'running' && task.attempt === header.attempt && task.ranOn.has(hostId) ? this.hosts.get(task.hostId ?? '') : undefined;
    if (!holder?.link) return { code: 'E_NOT_ASSIGNED', message: `${header.tid} attempt ${header.attempt} is not running on this host` };
    holder.link.sendBinary(frame);
    return null;
  }

  /** A host still waits for the image of an assignment: its old host sends it again through here. */
  imageMissing(hostId: string, tid: string, attempt: number): void {
    const task = this.runningOn(hostId, tid, attempt);
    if (task?.imageAway) this.hosts.get(task.imageAway.from)?.link?.send({ type: 'send-image', tid, attempt });
  }

  /**
   * The task has left its host, its image (if any) received whole: it is placed again at once,
   * on another host when there is one, and starts from the image.
   */
  migrated(hostId: string, m: HostMessageOf<'migrated'>): ErrorBody | null {
    const task = this.runningOn(hostId, m.tid, m.attempt);
    if (!task) return { code: 'E_NOT_ASSIGNED', message: `${m.tid} attempt ${m.attempt} is not running on this host` };
    let refused: ErrorBody | null = null;
    if (m.imageBytes !== null && m.via === 'channel') {
      task.image = null;
      task.imageAway = { bytes: m.imageBytes, from: hostId };
    } else if (m.imageBytes !== null) {
      task.imageAway = null;
      const image = this.images.take(m.tid, m.attempt);
      if (image && image.byteLength === m.imageBytes) task.image = image;
      else refused = { code: 'E_BAD_FRAME', message: `the image of ${m.tid} did not arrive whole: it restarts from its last checkpoint` };
    }
    this.images.forget(m.tid);
    // A task can leave without its event having reached here (its host lost the frame): it starts now.
    const migration = task.migration ?? this.newMigration('order', hostId, null);
    task.migration = { ...migration, via: m.via, left: true, obtrusivenessMs: m.obtrusivenessMs, frozen: m.frozen, bytes: m.imageBytes ?? 0 };
    this.hosts.get(hostId)?.assigned.delete(task.tid);
    task.runs.delete(m.attempt);
    this.transition(task, 'pending');
    task.hostId = null;
    task.avoid = hostId;
    task.job.spawned.push(task);
    this.scheduleDispatch();
    return refused;
  }

  /** The migrated task runs again: its migration is recorded with its timings. */
  resumed(hostId: string, tid: string, attempt: number): void {
    const task = this.runningOn(hostId, tid, attempt);
    if (!task?.migration) return;
    task.imageAway = null;
    this.recordMigration(task, hostId);
  }

  /** Orders the task to move (`POST /api/tasks/:tid/migrate`): its host freezes it and sends its image. */
  orderMigration(tid: string): { hostId: string } | ErrorBody {
    const task = this.tasks.get(tid);
    if (!task) return { code: 'E_NOT_FOUND', message: `no task ${tid} in an unfinished job` };
    const host = task.state === 'running' && task.hostId ? this.hosts.get(task.hostId) : undefined;
    if (!host?.link || this.leaving(task)) return { code: 'E_CONFLICT', message: `${tid} is not running on a connected host now` };
    host.link.send({ type: 'migrate', tasks: [{ tid, attempt: task.attempt }] });
    return { hostId: host.hostId };
  }

  /** Between the event and the image: the task is still on the host it is leaving. */
  private leaving(task: TaskRun): boolean {
    return task.migration !== null && !task.migration.left;
  }

  /**
   * Drains a host (`POST /api/hosts/:id/drain`): it is given no task while `draining`, and each
   * task running on it is ordered to move. Returns how many were ordered, or null for an unknown host.
   */
  drain(hostId: string, draining: boolean): number | null {
    const host = this.hosts.get(hostId);
    if (!host) return null;
    host.draining = draining;
    if (!draining) {
      this.scheduleDispatch();
      return 0;
    }
    let ordered = 0;
    for (const tid of host.assigned.keys()) if (!('code' in this.orderMigration(tid))) ordered++;
    return ordered;
  }

  private runningOn(hostId: string, tid: string, attempt: number): TaskRun | null {
    const task = this.tasks.get(tid);
    return task && task.state === 'running' && task.attempt === attempt && task.hostId === hostId ? task : null;
  }

  private recordMigration(task: TaskRun, to: string | null): void {
    const m = task.migration;
    if (!m) return;
    task.migration = null;
    task.job.stored.migrations++;
    this.dirtyJobs.add(task.job);
    this.writes.schedule();
    this.opts.migrations?.record({
      type: 'migration',
      jobId: task.job.stored.id,
      tid: task.tid,
      reason: m.reason,
      from: m.from,
      to,
      at: new Date(m.since).toISOString(),
      obtrusivenessMs: m.obtrusivenessMs,
      latencyMs: to === null ? null : this.now() - m.since,
      bytes: m.bytes,
      path: m.via,
      frozen: m.frozen,
    });
  }

  /** Where tasks run now: the host and its PeerJS id, or nulls while a task runs nowhere. */
  locate(tids: string[]): { tid: string; hostId: string | null; peerId: string | null }[] {
    return tids.map((tid) => {
      const task = this.tasks.get(tid);
      const host = task?.state === 'running' && task.hostId && !this.leaving(task) ? this.hosts.get(task.hostId) : undefined;
      return host?.link ? { tid, hostId: host.hostId, peerId: host.peerId } : { tid, hostId: null, peerId: null };
    });
  }

  /**
   * Where a relay lane from `from`, which host `hostId` runs, to `to` ends: the other connected
   * host running `to`. Neither end may be migrating: its messages wait here (MPVM's flush).
   */
  relayLaneEnd(hostId: string, from: string, to: string): { hostId: string; link: HostLink } | ErrorBody {
    const sender = this.tasks.get(from);
    if (sender?.state !== 'running' || sender.hostId !== hostId || this.leaving(sender)) {
      return { code: 'E_FORBIDDEN', message: `${from} does not run on this host` };
    }
    if (sender.job !== this.tasks.get(to)?.job) return { code: 'E_FORBIDDEN', message: `${from} may not address ${to}: another job` };
    const [route] = this.locate([to]);
    const link = route?.hostId ? this.hosts.get(route.hostId)?.link : null;
    if (!route?.hostId || !link) return { code: 'E_CONFLICT', message: `${to} is not running on a connected host now` };
    if (route.hostId === hostId) return { code: 'E_CONFLICT', message: `${to} runs on the same host` };
    return { hostId: route.hostId, link };
  }

  /**
   * A message envelope a host relays. The host must hold a task of the same job as both ends
   * (the sender, or the receiver when it bounces a message that reached it by a stale route).
   */
  relay(hostId: string, kind: 'msg' | 'ack', from: string, to: string, destination: string, bytes: Uint8Array): ErrorBody | null {
    const jobOf = (tid: string) => tid.slice(0, tid.lastIndexOf('.'));
    if (jobOf(from) !== jobOf(to)) return { code: 'E_FORBIDDEN', message: `${from} may not address ${to}: another job` };
    // A receiver acknowledges what it read as it ends: when that ended the job, nobody waits for it.
    if (kind === 'ack' && !this.tasks.has(destination)) return null;
    const host = this.hosts.get(hostId);
    // The sender may have ended or moved since (a re-send after a broken channel), or the receiver
    // may have moved away from this host (a late message handed on): a host that ran either counts.
    const holds =
      this.tasks.get(from)?.ranOn.has(hostId) ||
      this.tasks.get(to)?.ranOn.has(hostId) ||
      [...(host?.assigned.keys() ?? [])].some((tid) => jobOf(tid) === jobOf(from));
    if (!holds) return { code: 'E_FORBIDDEN', message: `this host runs no task of job ${jobOf(from)}` };
    if (!this.router.route(destination, bytes)) {
      return { code: 'E_TOO_LARGE', message: 'the coordinator holds too many messages for tasks not started yet' };
    }
    return null;
  }

  /** Expire attempts past their deadline; called on a timer. */
  tick(): void {
    const now = this.now();
    for (const task of this.timed) {
      if (task.deadline === null || task.deadline > now) continue;
      if (task.hostId) this.sendCancel(task.hostId, [{ tid: task.tid, attempt: task.attempt }], 'deadline passed');
      this.hosts.get(task.hostId ?? '')?.assigned.delete(task.tid);
      task.runs.delete(task.attempt);
      this.failAttempt(task, {
        code: 'E_TASK_TIMEOUT',
        message: `attempt ${task.attempt} exceeded ${task.job.stored.options.taskTimeoutMs} ms`,
      });
    }
    this.scheduleDispatch();
  }

  // ------------------------------------------------------------------ leasing

  private scheduleDispatch(): void {
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  /**
   * First fill every host up to its slots, then top each up to its prefetch depth, so that a
   * few long tasks spread over all hosts before any host queues a second one.
   */
  private dispatch(): void {
    const hosts = [...this.hosts.values()].filter((h) => h.link !== null && h.slots > 0 && !h.draining);
    if (!hosts.length) return;
    const batches = new Map<HostRun, TaskAssignment[]>();
    const add = (host: HostRun, task: TaskRun) => {
      const batch = batches.get(host) ?? [];
      batch.push(this.lease(task, host));
      batches.set(host, batch);
    };
    for (const job of this.active) {
      for (const task of job.spawned.splice(0)) {
        // A migrating task goes where its image was sent, when that host can still take it.
        const named = hosts.find((h) => h.hostId === task.migration?.to);
        const elsewhere = hosts.filter((h) => h.hostId !== task.avoid);
        const candidates = elsewhere.length ? elsewhere : hosts;
        add(named ?? candidates.reduce((best, h) => (h.assigned.size / h.slots < best.assigned.size / best.slots ? h : best)), task);
      }
    }
    for (const limit of [(h: HostRun) => h.slots, prefetchDepth]) {
      let progress = true;
      while (progress) {
        progress = false;
        for (const host of hosts) {
          if (host.assigned.size >= limit(host)) continue;
          const task = this.nextTask();
          if (!task) break;
          add(host, task);
          progress = true;
        }
      }
    }
    for (const [host, tasks] of batches) {
      const link = host.link!;
      // An image goes before the assignment that names it: the host finds it whole.
      for (const task of tasks) {
        const image = task.imageBytes === undefined ? null : this.tasks.get(task.tid)?.image;
        if (image) for (const part of imageParts(task.tid, task.attempt, image)) link.sendBinary(part);
      }
      for (let i = 0; i < tasks.length; i += LIMITS.itemsPerBatch) {
        link.send({ type: 'assign', tasks: tasks.slice(i, i + LIMITS.itemsPerBatch) });
      }
      for (const task of tasks) this.router.release(task.tid, (bytes) => link.sendBinary(bytes));
    }
    if (batches.size) this.writes.schedule();
  }

  /** The next task of the job furthest below its fair share (running ÷ priority), oldest job first on ties. */
  private nextTask(): TaskRun | null {
    let best: JobRun | null = null;
    let bestLoad = Infinity;
    for (const job of this.active) {
      if (job.queueHead >= job.queue.length && !job.retries.length) continue;
      const load = job.counts.running / job.stored.options.priority;
      if (load < bestLoad) {
        best = job;
        bestLoad = load;
      }
    }
    if (!best) return null;
    const task = best.retries.shift() ?? best.queue[best.queueHead++]!;
    if (best.queueHead > 4096 && best.queueHead * 2 > best.queue.length) {
      best.queue = best.queue.slice(best.queueHead);
      best.queueHead = 0;
    }
    return task;
  }

  private lease(task: TaskRun, host: HostRun): TaskAssignment {
    const job = task.job;
    task.attempt++;
    // The image went over a data channel to another host: its sender sends it through here instead.
    if (task.imageAway && task.migration?.to !== host.hostId) {
      this.hosts.get(task.imageAway.from)?.link?.send({ type: 'send-image', tid: task.tid, attempt: task.attempt });
    }
    task.hostId = host.hostId;
    task.avoid = null;
    task.ranOn.add(host.hostId);
    task.runs.set(task.attempt, host.hostId);
    this.transition(task, 'running');
    this.startDeadline(task);
    host.assigned.set(task.tid, task.attempt);
    job.stored.attempts++;
    if (job.stored.state === 'queued') job.stored.state = 'running';
    this.dirtyJobs.add(job);
    return {
      tid: task.tid,
      attempt: task.attempt,
      jobId: job.stored.id,
      parent: task.parent,
      name: task.name,
      programUrl: this.opts.programUrl(job.stored.programHash),
      input: task.input,
      resume: task.image || task.imageAway ? null : task.checkpoint,
      ...(task.image ? { imageBytes: task.image.byteLength } : {}),
      ...(task.imageAway ? { imageBytes: task.imageAway.bytes } : {}),
      seed: seedOf(task.tid),
      timeoutMs: job.stored.options.taskTimeoutMs,
    };
  }

  private measureRate(host: HostRun, completed: number): void {
    host.rateCount += completed;
    const elapsed = this.now() - host.rateSince;
    if (elapsed < RATE_WINDOW_MS) return;
    host.rate = (host.rate + (host.rateCount * 1000) / elapsed) / 2;
    host.rateSince = this.now();
    host.rateCount = 0;
  }

  private startDeadline(task: TaskRun): void {
    const timeout = task.job.stored.options.taskTimeoutMs;
    if (timeout === null) return;
    task.deadline = this.now() + timeout;
    this.timed.add(task);
  }

  // ------------------------------------------------------------------ task transitions

  private transition(task: TaskRun, state: RunState): void {
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
      this.timed.delete(task);
    }
    this.dirtyTasks.add(task);
    if (TERMINAL.has(state)) {
      // A task that ends before running again elsewhere still had its migration.
      this.recordMigration(task, null);
      task.image = null;
      this.ended(task);
    }
  }

  /** A task ended for good: it leaves its groups, its watchers hear of it, its waiting messages go. */
  private ended(task: TaskRun): void {
    const job = task.job;
    if (task.parent === null) job.rootsOpen--;
    job.groups.leaveAll(task.tid);
    this.router.forget(task.tid);
    const watchers = job.notifies.get(task.tid) ?? [];
    job.notifies.delete(task.tid);
    for (const { notifier, tag } of watchers) {
      this.notifyExit(task.tid, notifier, tag, task.state === 'done', task.lastSent.get(notifier) ?? 0);
    }
  }

  /** pvm_notify's message, ordered after every message the ended task sent the notifier. */
  private notifyExit(ended: string, notifier: string, tag: number, ok: boolean, after: number): void {
    this.router.route(notifier, encodeMessage({ from: ended, to: notifier, tag, seq: 0, after, data: { tid: ended, ok } }));
  }

  private spawn(parent: TaskRun, name: string | null, inputs: unknown[]): RequestOutcome {
    const job = parent.job;
    if (!job.tasks || job.tasks.length + inputs.length > LIMITS.tasksPerJob) {
      return { ok: false, error: { code: 'E_TOO_LARGE', message: `a job holds at most ${LIMITS.tasksPerJob} tasks` } };
    }
    const tids = inputs.map((input) => {
      const task = this.newTaskRun(job, job.tasks!.length, input ?? null, parent.tid, name);
      job.spawned.push(task);
      job.counts.pending++;
      this.newTasks.push(task);
      return task.tid;
    });
    job.stored.total += inputs.length;
    this.dirtyJobs.add(job);
    this.writes.schedule();
    this.scheduleDispatch();
    return { ok: true, value: tids };
  }

  private whereabouts(tid: string): Whereabouts {
    const task = this.tasks.get(tid);
    if (!task || TERMINAL.has(task.state)) return { kind: 'gone' };
    // MPVM's flush: messages for a migrating task wait here until it runs again.
    const link = task.state === 'running' && task.hostId && !this.leaving(task) ? this.hosts.get(task.hostId)?.link : null;
    return link ? { kind: 'held-by', send: (bytes) => link.sendBinary(bytes) } : { kind: 'not-started' };
  }

  private complete(task: TaskRun, value: unknown): void {
    for (const [attempt, hostId] of task.runs) {
      this.hosts.get(hostId)?.assigned.delete(task.tid);
      this.sendCancel(hostId, [{ tid: task.tid, attempt }], 'another attempt finished first');
    }
    task.runs.clear();
    task.result = value ?? null;
    task.error = null;
    this.transition(task, 'done');
    this.finishIfComplete(task.job);
  }

  private failAttempt(task: TaskRun, error: ErrorBody): void {
    this.recordMigration(task, null);
    // An image its host could not take (it never came whole, or does not decode): the next attempt starts from the checkpoint.
    if (error.code === 'E_BAD_FRAME') {
      task.image = null;
      task.imageAway = null;
    }
    task.error = error;
    task.failures++;
    if (task.failures < task.job.stored.options.maxAttempts) {
      this.transition(task, 'pending');
      task.hostId = null;
      task.job.retries.push(task);
    } else {
      this.transition(task, 'failed');
      this.finishIfComplete(task.job);
    }
  }

  /**
   * A lost attempt counts toward maxAttempts: a task that kills its tab every time must not
   * loop forever. Its run stays known, so a result the host kept while offline still counts.
   */
  private reissue(task: TaskRun, reason: string): void {
    this.opts.log.info({ tid: task.tid, attempt: task.attempt, reason }, 'reissuing task');
    this.failAttempt(task, { code: 'E_INTERNAL', message: reason });
  }

  private reissueUnclaimed(): void {
    for (const host of this.hosts.values()) {
      if (host.link) continue;
      for (const [tid, attempt] of host.assigned) {
        const task = this.tasks.get(tid);
        if (task && task.state === 'running' && task.attempt === attempt) this.reissue(task, 'host did not come back after restart');
      }
      host.assigned.clear();
    }
    this.scheduleDispatch();
  }

  /**
   * A job ends when its root tasks have ended; spawned tasks still running then (a worker still
   * waiting in recv) are cancelled. Its state is `failed` when a root task failed.
   */
  private finishIfComplete(job: JobRun): void {
    if (job.stored.finishedAt !== null || !job.tasks || job.rootsOpen > 0) return;
    const roots = job.tasks.slice(0, job.stored.options.roots);
    const leftovers = job.tasks.slice(job.stored.options.roots).filter((t) => !TERMINAL.has(t.state));
    for (const task of leftovers) {
      for (const [attempt, hostId] of task.runs) {
        this.hosts.get(hostId)?.assigned.delete(task.tid);
        this.sendCancel(hostId, [{ tid: task.tid, attempt }], 'its job ended');
      }
      this.transition(task, 'cancelled');
    }
    job.spawned = [];
    const failed = roots.filter((t) => t.state === 'failed');
    if (!failed.length) return this.finish(job, 'done', null);
    this.finish(job, 'failed', {
      code: 'E_TASK_FAILED',
      message: `${failed.length} of ${roots.length} tasks failed; first: ${failed[0]!.error?.message ?? 'unknown error'}`,
    });
  }

  private finish(job: JobRun, state: 'done' | 'failed' | 'cancelled', error: ErrorBody | null): void {
    job.stored.state = state;
    job.stored.finishedAt = this.now();
    this.active.delete(job);
    job.stored.error = error;
    this.dirtyJobs.add(job);
    this.opts.log.info({ job: job.stored.id, state }, 'job finished');
    // Once stored, the finished job's tasks leave memory; its results are read from the store.
    this.writes.schedule(() => {
      for (const task of job.tasks ?? []) this.tasks.delete(task.tid);
      job.tasks = null;
    });
  }

  private sendCancel(hostId: string, tasks: TaskRef[], reason: string): void {
    this.hosts.get(hostId)?.link?.send({ type: 'cancel', tasks, reason });
  }

  // ------------------------------------------------------------------ persistence

  private async commit(): Promise<void> {
    const jobs = this.dirtyJobs;
    const tasks = this.dirtyTasks;
    const fresh = this.newTasks;
    const checkpoints = this.dirtyCheckpoints;
    const hosts = this.dirtyHosts;
    this.dirtyJobs = new Set();
    this.dirtyTasks = new Set();
    this.newTasks = [];
    this.dirtyCheckpoints = new Map();
    this.dirtyHosts = new Set();
    const batch: WriteBatch = {
      jobs: [...jobs].map((j) => ({ ...j.stored })),
      newTasks: fresh.map(
        (t): StoredTask => ({
          ...taskUpdate(t),
          jobId: t.job.stored.id,
          index: t.index,
          parent: t.parent,
          name: t.name,
          input: t.input,
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
      await this.opts.store.commit(batch);
    } catch (error) {
      for (const j of jobs) this.dirtyJobs.add(j);
      for (const t of tasks) this.dirtyTasks.add(t);
      this.newTasks.unshift(...fresh);
      for (const [tid, c] of checkpoints) if (!this.dirtyCheckpoints.has(tid)) this.dirtyCheckpoints.set(tid, c);
      for (const h of hosts) this.dirtyHosts.add(h);
      throw error;
    }
  }

  // ------------------------------------------------------------------ helpers

  private newTaskRun(job: JobRun, index: number, input: unknown, parent: string | null, name: string | null): TaskRun {
    const task: TaskRun = {
      tid: makeTid(job.stored.id, index),
      job,
      index,
      parent,
      name,
      input,
      state: 'pending',
      attempt: 0,
      hostId: null,
      result: null,
      error: null,
      checkpoint: null,
      progress: 0,
      deadline: null,
      runs: new Map(),
      messagesIn: 0,
      messagesOut: 0,
      lastSent: new Map(),
      answers: new Map(),
      inBarrier: null,
      failures: 0,
      ranOn: new Set(),
      image: null,
      migration: null,
      avoid: null,
      imageAway: null,
    };
    job.tasks![index] = task;
    this.tasks.set(task.tid, task);
    return task;
  }

  private newJobRun(stored: StoredJob): JobRun {
    return {
      stored,
      tasks: new Array<TaskRun>(stored.total),
      queue: [],
      queueHead: 0,
      retries: [],
      spawned: [],
      rootsOpen: 0,
      groups: new TaskGroups(),
      notifies: new Map(),
      counts: { pending: 0, running: 0, done: 0, failed: 0, cancelled: 0 },
      progressSum: 0,
    };
  }

  private hostFor(hostId: string): HostRun {
    let host = this.hosts.get(hostId);
    if (!host) {
      host = {
        hostId,
        peerId: null,
        link: null,
        slots: 0,
        userAgent: '',
        secretHash: '',
        createdAt: this.now(),
        connectedAt: null,
        lastSeenAt: this.now(),
        done: 0,
        assigned: new Map(),
        draining: false,
        rate: 0,
        rateSince: this.now(),
        rateCount: 0,
      };
      this.hosts.set(hostId, host);
    }
    return host;
  }

  private statusOf(job: JobRun): JobStatus {
    return statusFromStored(job.stored, {
      total: job.stored.total,
      pending: job.counts.pending,
      running: job.counts.running,
      done: job.counts.done,
      failed: job.counts.failed,
    }, job.stored.total ? job.progressSum / job.stored.total : 1);
  }
}

function prefetchDepth(host: HostRun): number {
  return Math.max(host.slots * PREFETCH_PER_SLOT, Math.min(PREFETCH_MAX, host.slots + Math.ceil(host.rate * PREFETCH_SECONDS)));
}

function taskUpdate(t: TaskRun): TaskUpdate {
  return {
    tid: t.tid,
    state: t.state,
    attempt: t.attempt,
    hostId: t.hostId,
    result: t.result,
    error: t.error,
    messagesIn: t.messagesIn,
    messagesOut: t.messagesOut,
  };
}

export function statusFromStored(job: StoredJob, tasks: JobStatus['tasks'], progress: number): JobStatus {
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
