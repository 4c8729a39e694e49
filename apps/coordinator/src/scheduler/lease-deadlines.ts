import type { ErrorBody, TaskRef } from '@webpvm/vm-protocol';
import type { HostRegistry } from './host-registry.ts';
import type { JobRun, TaskRun } from './model.ts';

/**
 * A bag task's lease, when its job sets no taskTimeoutMs, lasts LEASE_FACTOR times what its job's
 * tasks take from lease to outcome lately, and LEASE_FLOOR_MS at least; before any outcome,
 * UNOBSERVED_LEASE_MS. Past it the attempt is lost (not failed) and runs elsewhere.
 */
export const LEASE_FLOOR_MS = 60_000;
const LEASE_FACTOR = 10;
const UNOBSERVED_LEASE_MS = 30 * 60_000;

/** What the job book does with an attempt past its deadline. */
export interface ExpiryActions {
  /** Past taskTimeoutMs: the attempt failed, on a host of volunteer `by`. */
  failed(task: TaskRun, error: ErrorBody, by: string | null): void;
  /** Past its lease: the attempt is lost with its host. */
  lost(ref: TaskRef, reason: string, by: string | null): void;
  /** A replicated task: each replica has a deadline of its own (replication.ts `expire`), against `now` on the monotonic clock. */
  replicas(task: TaskRun, now: number): void;
  /** Tasks came free: leasing should look again. */
  dispatch(): void;
}

export interface LeaseDeadlinesOptions {
  /** Deadlines and leases run on it (SchedulerOptions `monotonic`), never on the wall clock. */
  monotonic: () => number;
  hosts: HostRegistry;
  /** The shortest lease of a bag task whose job sets no taskTimeoutMs. */
  floorMs: number;
  actions: ExpiryActions;
}

/**
 * Every running attempt with a deadline — the job's taskTimeoutMs, or a bag task's lease — and
 * what happens past it: past taskTimeoutMs the task failed; past its lease the host kept it too
 * long — hoarded it, or went quiet — and the attempt is lost, its volunteer given fewer leases.
 * Tasks of a `main` job and spawned ones have no lease of their own: they wait on each other's
 * messages for as long as a program needs.
 */
export class LeaseDeadlines {
  readonly #timed = new Set<TaskRun>();
  readonly #opts: LeaseDeadlinesOptions;

  constructor(opts: LeaseDeadlinesOptions) {
    this.#opts = opts;
  }

  /** The attempt just leased runs against its deadline from now. */
  start(task: TaskRun): void {
    const now = this.#opts.monotonic();
    task.leasedAt = now;
    task.aliveAt = now;
    const { taskTimeoutMs, kind } = task.job.stored.options;
    if (taskTimeoutMs === null && (kind !== 'bag' || task.spec.parent !== null)) return;
    task.deadline = taskTimeoutMs === null ? null : now + taskTimeoutMs;
    this.#timed.add(task);
  }

  /** The task runs no more: it has no deadline. */
  stop(task: TaskRun): void {
    task.deadline = null;
    this.#timed.delete(task);
  }

  /** How long a bag task's lease lasts, from its lease or the last sign of it alive. */
  limit(job: JobRun): number {
    const observed = job.leaseToOutcomeMs;
    return observed === null ? Math.max(UNOBSERVED_LEASE_MS, this.#opts.floorMs) : Math.max(this.#opts.floorMs, LEASE_FACTOR * observed);
  }

  /** Its host showed the attempt alive (a checkpoint, progress): its lease runs on from now. */
  alive(task: TaskRun): void {
    task.aliveAt = this.#opts.monotonic();
  }

  /** An outcome of the attempt leased at `leasedAt` came: the job's leases follow its tasks' times. */
  observe(task: TaskRun, leasedAt: number): void {
    const { job } = task;
    if (job.stored.options.kind !== 'bag' || task.spec.parent !== null) return;
    const ms = this.#opts.monotonic() - leasedAt;
    job.leaseToOutcomeMs = job.leaseToOutcomeMs === null ? ms : 0.9 * job.leaseToOutcomeMs + 0.1 * ms;
  }

  /** Attempts past their deadline are withdrawn from their hosts; called on a timer. */
  expire(): void {
    const { monotonic, hosts, actions } = this.#opts;
    const at = monotonic();
    for (const task of this.#timed) {
      if (task.quorum) {
        actions.replicas(task, at);
        continue;
      }
      const leaseOver = task.deadline === null && at - task.aliveAt > this.limit(task.job);
      if (!leaseOver && (task.deadline === null || task.deadline > at)) continue;
      const { hostId, attempt } = task;
      const volunteerId = hosts.get(hostId)?.volunteerId ?? null;
      if (hostId) hosts.sendCancel(hostId, [{ tid: task.tid, attempt }], leaseOver ? 'lease expired' : 'deadline passed');
      hosts.release(hostId, task.tid);
      task.runs.delete(attempt);
      if (!leaseOver) {
        actions.failed(task, { code: 'E_TASK_TIMEOUT', message: `attempt ${attempt} exceeded ${task.job.stored.options.taskTimeoutMs} ms` }, volunteerId);
        continue;
      }
      if (volunteerId) hosts.volunteers.dropped(volunteerId);
      actions.lost({ tid: task.tid, attempt }, `lease expired after ${Math.round((at - task.leasedAt) / 1000)} s`, volunteerId);
    }
    actions.dispatch();
  }
}
