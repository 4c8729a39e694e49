import type { ErrorBody, TaskOp } from '@webpvm/vm-protocol';
import { encodeNotice, type VmAnswer, type VmEffect } from '@webpvm/task-sdk/vm';
import type { HostRegistry } from './host-registry.ts';
import type { JobBook } from './job-book.ts';
import type { JobRun, TaskRun } from './model.ts';
import type { RelayRouter } from './relay-router.ts';
import type { WriteBehind } from './write-behind.ts';

/** What a task request answers: a value, an error, or nothing yet (a barrier answers on release). */
export type RequestOutcome = VmAnswer | 'later';

export interface VmServicesOptions {
  book: JobBook;
  hosts: HostRegistry;
  router: RelayRouter;
  writes: WriteBehind;
}

/**
 * The PVM services for tasks on hosts: each job's JobVm (task-sdk) answers, and this carries out
 * what it sets going — spawned tasks into the job book, delayed replies to the hosts that hold
 * their tasks now, exit notices through the relay, in order after the ended task's messages.
 * What the JobVm knows is stored with the job before any answer leaves (`answered`): a restarted
 * coordinator gives a request made again its first answer, and counts a barrier call once.
 */
export class VmServices {
  readonly #opts: VmServicesOptions;

  constructor(opts: VmServicesOptions) {
    this.#opts = opts;
  }

  /** A task's request (spawn, groups, barrier, notify) from the host that runs it. */
  request(hostId: string, tid: string, attempt: number, requestId: number, op: TaskOp): RequestOutcome {
    const task = this.#opts.book.runningOn(hostId, tid, attempt);
    if (!task) return { ok: false, error: notRunningHere(tid, attempt) };
    const { answer, effects } = task.job.vm.request(tid, requestId, op);
    this.#opts.writes.vm(task.job);
    this.#apply(task.job, effects);
    return answer;
  }

  /** Sends an answer once what it answers is stored. */
  answered(send: () => void): void {
    this.#opts.writes.schedule(send);
  }

  /**
   * Sends `tid` again the exit notices it was sent: it may have lost them, restarted from its
   * checkpoint after a crash or behind a connection that broke. It drops by seq what it has.
   */
  noticesAgain(tid: string): void {
    const task = this.#opts.book.task(tid);
    for (const notice of task?.job.vm.noticesFor(tid) ?? []) this.#opts.router.route(tid, encodeNotice(notice));
  }

  /** A task ended for good: it leaves its groups, its watchers hear of it, and messages waiting for it go. */
  ended(task: TaskRun): void {
    this.#opts.router.forget(task.tid);
    const { vm } = task.job;
    const held = vm.holdsState;
    const effects = vm.ended(task.tid, task.state === 'done', task.lastSent);
    if (held || vm.holdsState) this.#opts.writes.vm(task.job);
    this.#apply(task.job, effects);
  }

  #apply(job: JobRun, effects: VmEffect[]): void {
    for (const effect of effects) {
      if (effect.kind === 'spawn') this.#opts.book.spawned(job, effect.tasks);
      else if (effect.kind === 'notice') this.#opts.router.route(effect.notice.to, encodeNotice(effect.notice));
      else {
        const { tid, requestId, answer } = effect;
        this.answered(() => this.#opts.hosts.send(this.#opts.book.task(tid)?.hostId ?? null, { type: 'reply', tid, requestId, ...answer }));
      }
    }
  }
}

export function notRunningHere(tid: string, attempt: number): ErrorBody {
  return { code: 'E_NOT_ASSIGNED', message: `${tid} attempt ${attempt} is not running on this host` };
}
