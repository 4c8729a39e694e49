import type { ErrorBody } from '@webpvm/vm-protocol';
import type { Logger } from 'pino';
import type { HostRegistry } from './host-registry.ts';
import type { LeaseDeadlines } from './lease-deadlines.ts';
import { type JobRun, MAX_LOSSES, type TaskRun, lostTooOften, rootsOpen } from './model.ts';
import type { Ballot } from './quorum.ts';

/** What replication needs of the job book (job-book.ts): ending tasks. */
export interface ReplicationBook {
  complete(task: TaskRun, value: unknown): void;
  /** The task fails for good with `error`. */
  fail(task: TaskRun, error: ErrorBody): void;
}

export interface ReplicationOptions {
  hosts: HostRegistry;
  log: Logger;
  /** Replicas' leases run on it (SchedulerOptions `monotonic`). */
  monotonic: () => number;
  dispatch: () => void;
  /** Draws spot checks of adaptive replication (Math.random). */
  random?: () => number;
}

/**
 * Replicated bag tasks (`replicas > 1`): their replicas given out (leasing.ts takes them from the
 * job's `replicas` queue), answered (`ballot`), lost, reclaimed or past their lease (replaced on
 * another volunteer), and adaptive replication's trust — a trusted volunteer's replica alone, its
 * outcome provisional until its next spot check. The task's ballots are its `Quorum` (quorum.ts);
 * the volunteers' records are `volunteers.ts`'s.
 */
export class Replication {
  readonly #book: ReplicationBook;
  readonly #deadlines: LeaseDeadlines;
  readonly #opts: ReplicationOptions;

  constructor(book: ReplicationBook, deadlines: LeaseDeadlines, opts: ReplicationOptions) {
    this.#book = book;
    this.#deadlines = deadlines;
    this.#opts = opts;
  }

  /**
   * A replica is leased to `volunteerId` at `address`: the first one makes the task run. With
   * adaptive replication, the first going to a trusted volunteer runs alone, unless drawn for a
   * spot check.
   */
  leased(task: TaskRun, volunteerId: string | null, address: string | null): void {
    const quorum = task.quorum!;
    const first = quorum.volunteers.size === 0;
    quorum.issued(volunteerId, address, task.attempt, this.#opts.monotonic());
    const { adaptive, spotCheck } = task.job.stored.options;
    const random = this.#opts.random ?? Math.random;
    if (first && adaptive && volunteerId && this.#opts.hosts.volunteers.get(volunteerId).trusted && random() >= (spotCheck ?? 0.1)) quorum.trustAlone(volunteerId);
    this.#queue(task);
  }

  /** After a restart: ballots are not stored, so the task gathers its quorum again, its run on a returning host one replica. */
  restored(task: TaskRun): void {
    if (task.hostId) task.quorum!.issued(null, null, task.attempt, this.#opts.monotonic());
    this.#queue(task);
  }

  /**
   * A replica's outcome: once `quorum` agree, the task ends with their outcome and each replica's
   * volunteer is credited — validated when it agreed, invalid when it did not.
   */
  ballot(task: TaskRun, ballot: Ballot): void {
    const quorum = task.quorum!;
    task.runs.delete(ballot.attempt);
    const verdict = quorum.cast(ballot);
    if (verdict.kind === 'waiting') return;
    if (verdict.kind === 'provisional') {
      this.#opts.hosts.volunteers.get(verdict.outcome.volunteerId!).provisional.add(task);
      task.job.provisional++;
      return this.verifyLeftovers(task.job);
    }
    if (verdict.kind === 'more') return this.#queue(task);
    if (verdict.kind === 'disagreed') {
      return this.#fail(task, { code: 'E_NO_QUORUM', message: `no ${task.job.stored.options.quorum} of its ${verdict.ballots.length} results agreed` });
    }
    const { volunteers } = this.#opts.hosts;
    const confirmed: TaskRun[] = [];
    const doubted: TaskRun[] = [];
    for (const b of verdict.agreeing) if (b.volunteerId) confirmed.push(...volunteers.judged(b.volunteerId, true));
    for (const b of verdict.dissenting) if (b.volunteerId) doubted.push(...volunteers.judged(b.volunteerId, false));
    if (verdict.outcome.ok) this.#book.complete(task, verdict.outcome.value);
    else this.#fail(task, verdict.outcome.error!);
    // A volunteer that agreed passed a spot check: what it gave alone since stands. One that did not
    // is trusted no more: what it gave alone is checked by a quorum, its lone ballot one vote.
    for (const t of confirmed) {
      if (t.state !== 'running' || !t.quorum?.provisional) continue;
      t.job.provisional--;
      this.#book.complete(t, t.quorum.provisional.value);
    }
    for (const t of doubted) this.#widen(t);
  }

  /** A replica was lost with its host: another volunteer runs one; a task lost `maxLosses` times fails. */
  lost(task: TaskRun, attempt: number, reason: string): void {
    if (task.state !== 'running' || !task.quorum!.out.has(attempt)) return;
    if (++task.losses < MAX_LOSSES) return this.#gone(task, attempt, reason);
    this.#fail(task, lostTooOften(task, reason));
  }

  /** A replica's host was reclaimed by its owner: a replica does not migrate, another volunteer runs one afresh. */
  reclaimed(task: TaskRun, attempt: number): void {
    this.#opts.hosts.sendCancel(task.runs.get(attempt) ?? null, [{ tid: task.tid, attempt }], 'a replica does not migrate: it runs again elsewhere');
    this.#gone(task, attempt, 'its host was reclaimed');
  }

  /**
   * Each replica has a lease of its own. Past taskTimeoutMs, a replica is a ballot for failure;
   * past its lease, it is replaced and its volunteer given fewer leases.
   */
  expire(task: TaskRun, now: number): void {
    const { taskTimeoutMs } = task.job.stored.options;
    for (const [attempt, leasedAt] of [...task.quorum!.out]) {
      if (task.state !== 'running') return;
      const timedOut = taskTimeoutMs !== null && now - leasedAt > taskTimeoutMs;
      if (!timedOut && (taskTimeoutMs !== null || now - Math.max(leasedAt, task.aliveAt) <= this.#deadlines.limit(task.job))) continue;
      const hostId = task.runs.get(attempt) ?? null;
      const volunteerId = this.#opts.hosts.get(hostId)?.volunteerId ?? null;
      this.#opts.hosts.sendCancel(hostId, [{ tid: task.tid, attempt }], timedOut ? 'deadline passed' : 'lease expired');
      this.#opts.hosts.release(hostId, task.tid);
      if (timedOut) {
        this.ballot(task, { volunteerId, attempt, ok: false, value: null, error: { code: 'E_TASK_TIMEOUT', message: `attempt ${attempt} exceeded ${taskTimeoutMs} ms` } });
        continue;
      }
      if (volunteerId) this.#opts.hosts.volunteers.dropped(volunteerId);
      this.lost(task, attempt, `lease expired after ${Math.round((now - leasedAt) / 1000)} s`);
    }
  }

  /**
   * A job whose only tasks left stand on a trusted volunteer's word alone would wait for that
   * volunteer's next spot check, which may never come: they are checked by a quorum now.
   */
  verifyLeftovers(job: JobRun): void {
    if (job.stored.open || job.provisional === 0 || job.provisional < rootsOpen(job)) return;
    const left = [...job.resident].filter((t) => t.state === 'running' && t.quorum?.provisional);
    if (left.length && left.length === rootsOpen(job)) for (const t of left) this.#widen(t);
  }

  #widen(task: TaskRun): void {
    if (task.state !== 'running' || !task.quorum?.alone) return;
    if (task.quorum.provisional) task.job.provisional--;
    task.quorum.widen();
    this.#queue(task);
  }

  /** A replica out is gone unanswered (`why`): another volunteer runs one in its place. */
  #gone(task: TaskRun, attempt: number, why: string): void {
    const hostId = task.runs.get(attempt) ?? null;
    if (!task.quorum!.gone(attempt)) return;
    this.#opts.hosts.release(hostId, task.tid);
    task.runs.delete(attempt);
    this.#opts.log.info({ tid: task.tid, attempt, why }, 'replacing a replica');
    this.#queue(task);
  }

  /** The job's queue gets the task once for each replica it still has to give out. */
  #queue(task: TaskRun): void {
    const quorum = task.quorum;
    if (!quorum || task.state !== 'running') return;
    for (; quorum.queued < quorum.unissued; quorum.queued++) task.job.replicas.push(task);
    this.#opts.dispatch();
  }

  /** The task ends failed: its replicas still out are cancelled on their hosts. */
  #fail(task: TaskRun, error: ErrorBody): void {
    for (const [attempt, hostId] of task.runs) {
      this.#opts.hosts.release(hostId, task.tid);
      this.#opts.hosts.sendCancel(hostId, [{ tid: task.tid, attempt }], 'its task ended');
    }
    task.runs.clear();
    this.#book.fail(task, error);
  }
}
