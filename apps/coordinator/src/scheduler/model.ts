import type { Checkpoint, ErrorBody, MigrationReason, TaskCounts } from '@webpvm/vm-protocol';
import type { JobVm, VmTask } from '@webpvm/task-sdk/vm';
import type { KeptImage, StoredJob } from '../store/store.ts';
import type { HostLink } from './ports.ts';
import type { Quorum } from './quorum.ts';
import type { Agree } from './result-agreement.ts';
import type { TaskWindow } from './task-window.ts';

export type { KeptImage };

/**
 * The scheduler's in-memory picture of jobs, tasks and hosts: plain records that the job book,
 * the host registry, leasing, migrations and the relay policy read and change. Who the task is
 * (tid, parent, input, seed) is the job's virtual machine's (JobVm); what follows is where and
 * how it runs.
 */

export type RunState = 'pending' | 'running' | 'done' | 'failed' | 'cancelled';

export const TERMINAL: ReadonlySet<RunState> = new Set(['done', 'failed', 'cancelled']);

export interface TaskRun {
  readonly tid: string;
  readonly spec: VmTask;
  readonly job: JobRun;
  state: RunState;
  attempt: number;
  hostId: string | null;
  /** Hosts of the attempts that may still report an outcome. */
  readonly runs: Map<number, string>;
  /** Attempts that ended in an error of the task's own: what maxAttempts counts. */
  failures: number;
  /** Attempts lost with their host (closed, crashed, silent): not the task's doing, counted apart. */
  losses: number;
  /** Volunteers whose attempt at it failed, outlived its lease or was lost: its retries go to others while others are connected (leasing.ts). */
  readonly avoid: Set<string | null>;
  /**
   * When the running attempt expires (taskTimeoutMs), else null. This and the two below are on the
   * monotonic clock (SchedulerOptions `monotonic`): they are never stored or shown, and a restart
   * starts every lease afresh.
   */
  deadline: number | null;
  /** When the running attempt was leased, and when its host last showed it alive (a checkpoint, progress): its lease runs from then. */
  leasedAt: number;
  aliveAt: number;
  progress: number;
  result: unknown;
  error: ErrorBody | null;
  messagesIn: number;
  messagesOut: number;
  /** A root task's completion cursor, given when it ends done or failed. */
  seq: number | null;
  /** The last seq this task sent to each receiver, from its outcome: exit notifications follow them. */
  lastSent: Map<string, number>;
  /** Every host that ran an attempt: it may still relay messages of the task's job that reach it late. */
  readonly ranOn: Set<string>;
  /** What the next attempt starts from. */
  start: StartPoint;
  /** The next attempt follows the loss of the task's host: it sends its sender log again as it starts (recovery.ts). */
  recovering: boolean;
  /**
   * The running attempt's assignment has gone to its host. It goes only once the lease is stored
   * (leasing.ts): until then messages for the task wait here, and nobody is told where it runs.
   */
  assignmentSent: boolean;
  /**
   * A sender's log let go of messages to this task that its restart point does not cover: lost
   * before its next checkpoint image, it cannot be restarted exactly and fails (recovery.ts).
   */
  unlogged: boolean;
  /** The migration under way, from its event until the task runs again. */
  migration: Migration | null;
  /** The attempt its host was asked to give back (leasing.ts `#balance`): it is asked once. */
  askedBack: number | null;
  /**
   * A root task of a job with `replicas > 1`: its replicas out, their ballots and the volunteers
   * that ran them (quorum.ts). Its attempts run side by side, each a replica; `attempt` and
   * `hostId` name the latest. Null for every other task, which runs one attempt at a time.
   */
  readonly quorum: Quorum | null;
}

/**
 * Where a task's next attempt starts: its last checkpoint kept here, unless it migrated with an
 * image (vm-protocol task-image.ts) — held here, or sent host to host over a data channel — which
 * serves until the task stores a checkpoint of its own.
 */
export interface StartPoint {
  checkpoint: Checkpoint | null;
  image: Uint8Array | null;
  /**
   * An image that went host to host over a data channel: its size, and the host that sent it and
   * keeps it a while, to send it again through the coordinator if it does not arrive.
   */
  imageAway: { bytes: number; from: string } | null;
  /**
   * An image too large for the coordinator, kept by another volunteer's host (kept-images.ts): the
   * restart point when `image` is null. `sha256` is checked when it comes back.
   */
  kept: KeptImage | null;
}

export interface Migration {
  reason: MigrationReason;
  from: string;
  /** The host named as its destination at the event, when one could take it. */
  to: string | null;
  via: 'coordinator' | 'channel';
  /** The task has left its old host (`migrated` came): messages no longer wait for it. */
  left: boolean;
  /** When it began: `since` on the wall clock, as its event's `at` shows it; `began` on the monotonic clock, what its latency is measured from. */
  since: number;
  began: number;
  obtrusivenessMs: number;
  frozen: boolean;
  bytes: number;
}

/**
 * A job in memory. Its tasks are not all here: a bag may have millions. What is here is every
 * task not ended — but root tasks still waiting for their first attempt, of which only a window
 * is read in from the store — and ended ones until their end is stored. The counts that views
 * and the end of the job need are kept as numbers (`stored.tally`, `running`).
 */
export interface JobRun {
  /** Its row, as it is written: `stored.tally` counts what ended. */
  stored: StoredJob;
  /** The job's PVM services: its tasks' identities, groups, barriers, exit notifications. */
  readonly vm: JobVm;
  /** Its tasks in memory. */
  readonly resident: Set<TaskRun>;
  /** Root tasks waiting for their first attempt, read from the store in index order, a window at a time. */
  readonly window: TaskWindow;
  /** Tasks to run again go before fresh ones, so a retry is not starved by a long queue. */
  retries: TaskRun[];
  /**
   * Tasks to place before any other, at once, on the least loaded host, beyond slots if need be:
   * spawned tasks (PVM starts them side by side), migrating ones, spawned ones a restart brought
   * back, and bag tasks a host gave back unstarted to balance a job's end.
   */
  placeNow: TaskRun[];
  /** Replicated tasks with a replica to give out, once per replica (quorum.ts `unissued`). */
  replicas: TaskRun[];
  /** Its tasks whose outcome stands on a trusted volunteer's word alone, about (a guard for job-book.ts `#verifyLeftovers`). */
  provisional: number;
  /** How two results of its replicated tasks agree (validators.ts). */
  readonly agree: Agree;
  running: number;
  progressSum: number;
  /** How long its bag tasks take from lease to outcome, lately (a moving mean, ms); null before the first. */
  leaseToOutcomeMs: number | null;
  /** Hosts that ran any of its tasks: they may relay its messages, late ones included. */
  readonly ranOn: Set<string>;
}

/** Root tasks not ended yet: the job ends when none is left and it takes no more inputs. */
export const rootsOpen = (job: JobRun): number => job.stored.options.roots - job.stored.tally.rootsEnded;

/** The job's task counts, exact, from its numbers: a pending task need not be in memory. */
export function countsOf(job: JobRun): TaskCounts {
  const { total, tally } = job.stored;
  const { running } = job;
  return { total, pending: total - tally.done - tally.failed - tally.cancelled - running, running, done: tally.done, failed: tally.failed };
}

export interface HostRun {
  readonly hostId: string;
  /** The browser profile it is part of; null until it says hello (a host a restart brought back). */
  volunteerId: string | null;
  /** The network address its connection came from; null until it says hello. */
  address: string | null;
  peerId: string | null;
  link: HostLink | null;
  slots: number;
  userAgent: string;
  secretHash: string;
  createdAt: number;
  connectedAt: number | null;
  lastSeenAt: number;
  /** Its row was written once it held a task: a restart knows it (leasing.ts). */
  stored: boolean;
  done: number;
  /** tid → attempt of the tasks this host holds (running or queued in the page). */
  readonly assigned: Map<string, number>;
  /** Ordered to drain (`POST /api/hosts/:id/drain`): it is given nothing and its tasks move away. */
  draining: boolean;
  /** Tasks per second this host has been completing lately (smoothed). */
  rate: number;
  /** On the monotonic clock: its rate is a duration. `createdAt`, `connectedAt` and `lastSeenAt` are wall-clock times, stored or shown. */
  rateSince: number;
  rateCount: number;
  /** tid → bytes of the checkpoint images this host keeps for other volunteers' tasks (kept-images.ts). */
  readonly kept: Map<string, number>;
}

/**
 * Attempts a task may lose with their hosts before it fails (job-book.ts `lost`, replication.ts
 * `lost`): losses are the hosts' doing, but one that ends every tab it runs on must not go round
 * the grid forever.
 */
export const MAX_LOSSES = 10;

/** Why a task lost MAX_LOSSES times fails, the last time because of `reason`. */
export const lostTooOften = (task: TaskRun, reason: string): ErrorBody => ({
  code: 'E_TASK_LOST',
  message: `lost with its host ${task.losses} times (last: ${reason}): it may end every tab that runs it`,
});

/** Between the event and the image: the task is still on the host it is leaving, and its messages wait here. */
export function isLeaving(task: TaskRun): boolean {
  return task.migration !== null && !task.migration.left;
}

/** The host a task runs on now, when it runs and is not leaving it. */
export function settledHost(task: TaskRun): string | null {
  return task.state === 'running' && task.hostId && task.assignmentSent && !isLeaving(task) ? task.hostId : null;
}

export const unrecoverable = (task: TaskRun, reason: string): ErrorBody => ({
  code: 'E_TASK_LOST',
  message: `${task.tid} was lost with its host (${reason}) and cannot be restarted exactly: a sender let go of messages to it that its last checkpoint does not cover (a sender log holds at most 128 MiB)`,
});
