import type { Checkpoint, ErrorBody, HostMessageOf, TaskOutcome, TaskRef } from '@webpvm/vm-protocol';
import type { HostRegistry } from './host-registry.ts';
import type { JobBook } from './job-book.ts';
import { TERMINAL } from './model.ts';
import { notRunningHere } from './vm-services.ts';
import type { WriteBehind } from './write-behind.ts';

export interface HostReportsOptions {
  book: JobBook;
  hosts: HostRegistry;
  writes: WriteBehind;
  dispatch: () => void;
  /** Task `tid`, which sent messages, ended on `hostId`, which keeps its sender log (recovery.ts). */
  logKept: (hostId: string, tid: string) => void;
}

/** What hosts report of the tasks they run — outcomes, checkpoints, progress — checked against what they were assigned. */
export class HostReports {
  readonly #opts: HostReportsOptions;

  constructor(opts: HostReportsOptions) {
    this.#opts = opts;
  }

  /**
   * Task outcomes from a host. Each is acknowledged once stored, so the host can forget it;
   * an outcome for an attempt this host never ran is refused (and also acknowledged: it can never count).
   */
  outcomes(hostId: string, items: TaskOutcome[]): ErrorBody[] {
    const { book, hosts, writes } = this.#opts;
    const host = hosts.get(hostId);
    const refused: ErrorBody[] = [];
    const acks: TaskRef[] = [];
    let done = 0;
    for (const outcome of items) {
      acks.push({ tid: outcome.tid, attempt: outcome.attempt });
      if (host?.assigned.get(outcome.tid) === outcome.attempt) host.assigned.delete(outcome.tid);
      const task = book.task(outcome.tid);
      if (!task || TERMINAL.has(task.state)) continue;
      if (task.runs.get(outcome.attempt) !== hostId) {
        refused.push({ code: 'E_NOT_ASSIGNED', message: `${outcome.tid} attempt ${outcome.attempt} is not assigned to this host` });
        continue;
      }
      // An attempt its host could not run is no outcome of the task's, nor a replica's ballot: a loss.
      if (!outcome.ok && outcome.error.code === 'E_HOST_FAULT') {
        book.hostFault(task, outcome.attempt, outcome.error, host?.volunteerId ?? null);
        continue;
      }
      if (task.quorum) {
        const leasedAt = task.quorum.out.get(outcome.attempt);
        if (leasedAt === undefined) continue;
        const { attempt, ok } = outcome;
        book.deadlines.observe(task, leasedAt);
        book.replication.ballot(task, { volunteerId: host?.volunteerId ?? null, attempt, ok, value: ok ? outcome.value : null, error: ok ? null : outcome.error });
        if (ok) done++;
        continue;
      }
      task.runs.delete(outcome.attempt);
      if (outcome.attempt === task.attempt) book.deadlines.observe(task, task.leasedAt);
      task.lastSent = new Map((outcome.sent ?? []).map((s) => [s.to, s.seq]));
      if (outcome.sent?.length) this.#opts.logKept(hostId, task.tid);
      if (outcome.ok) {
        done++;
        book.complete(task, outcome.value);
      } else if (outcome.attempt === task.attempt) {
        book.failAttempt(task, outcome.error, host?.volunteerId ?? null);
      }
    }
    if (host) {
      hosts.completed(host, done, items.length);
      if (host.volunteerId) hosts.volunteers.returned(host.volunteerId, items.length);
      writes.schedule(() => host.link?.send({ type: 'ack', tasks: acks }));
    }
    this.#opts.dispatch();
    return refused;
  }

  /**
   * Attempts a host gave back unstarted, asked by leasing.ts `#balance`: each task is placed
   * again at once, on the least loaded host, and the lease that never ran does not count as an
   * attempt. One this host was not asked for, or that ended or moved meanwhile, is only released.
   */
  withdrawn(hostId: string, refs: TaskRef[]): void {
    const { book, hosts, writes } = this.#opts;
    for (const { tid, attempt } of refs) {
      const task = book.task(tid);
      if (!task || task.runs.get(attempt) !== hostId || task.askedBack !== attempt) continue;
      hosts.release(hostId, tid);
      task.runs.delete(attempt);
      if (task.state !== 'running' || task.attempt !== attempt) continue;
      book.transition(task, 'pending');
      task.hostId = null;
      task.job.stored.attempts--;
      writes.job(task.job);
      task.job.placeNow.push(task);
    }
    writes.schedule();
    this.#opts.dispatch();
  }

  checkpoint(hostId: string, tid: string, attempt: number, checkpoint: Checkpoint): ErrorBody | null {
    const task = this.#opts.book.runningOn(hostId, tid, attempt);
    if (!task) return notRunningHere(tid, attempt);
    this.#opts.book.deadlines.alive(task);
    // A replica's state is its volunteer's word: another replica must not start from it.
    if (task.quorum) return null;
    this.#opts.book.keepImage(task, null);
    task.start = { checkpoint, image: null, imageAway: null, kept: null };
    this.#opts.writes.checkpoint(tid, checkpoint);
    this.#opts.writes.schedule();
    return null;
  }

  progress(hostId: string, items: HostMessageOf<'progress'>['items']): void {
    for (const { tid, attempt, fraction, messagesIn, messagesOut } of items) {
      const task = this.#opts.book.runningOn(hostId, tid, attempt);
      if (!task) continue;
      this.#opts.book.deadlines.alive(task);
      task.job.progressSum += fraction - task.progress;
      task.progress = fraction;
      if (messagesIn !== undefined) task.messagesIn = messagesIn;
      if (messagesOut !== undefined) task.messagesOut = messagesOut;
    }
  }
}
