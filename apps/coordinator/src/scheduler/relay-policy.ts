import { type ErrorBody, parseTid } from '@webpvm/vm-protocol';
import type { Logger } from 'pino';
import type { HostRegistry } from './host-registry.ts';
import type { JobBook } from './job-book.ts';
import { TERMINAL, settledHost } from './model.ts';
import type { HostLink } from './ports.ts';
import { RelayRouter, type Whereabouts } from './relay-router.ts';

export interface RelayPolicyOptions {
  book: JobBook;
  hosts: HostRegistry;
  log: Logger;
}

const jobOf = (tid: string): string => parseTid(tid).jobId;

/**
 * Who may send what through the coordinator, and where it goes: task locations for data
 * channels (`locate`), relay lanes' ends, and envelopes relayed between hosts. A task may address
 * only tasks of its own job; a host relays only for jobs it runs (or ran) tasks of.
 */
export class RelayPolicy {
  readonly #opts: RelayPolicyOptions;
  readonly router: RelayRouter;

  constructor(opts: RelayPolicyOptions) {
    this.#opts = opts;
    this.router = new RelayRouter((tid) => this.#whereabouts(tid), opts.log);
  }

  /**
   * Where tasks run now: the host and its PeerJS id, or nulls while a task runs nowhere (or is
   * leaving). Asked by a host (`askedBy`), only for tasks of the jobs it runs a task of now: a
   * stranger learns no peer id to forge frames to (the answer is the same as for a task that runs
   * nowhere).
   */
  locate(tids: string[], askedBy?: string): { tid: string; hostId: string | null; peerId: string | null }[] {
    const jobs = askedBy === undefined ? null : this.#jobsRunningOn(askedBy);
    return tids.map((tid) => {
      const task = this.#opts.book.task(tid);
      const host = task && (!jobs || jobs.has(task.job.stored.id)) ? this.#opts.hosts.get(settledHost(task)) : undefined;
      return host?.link ? { tid, hostId: host.hostId, peerId: host.peerId } : { tid, hostId: null, peerId: null };
    });
  }

  #jobsRunningOn(hostId: string): Set<string> {
    const jobs = new Set<string>();
    for (const tid of this.#opts.hosts.get(hostId)?.assigned.keys() ?? []) jobs.add(this.#opts.book.task(tid)?.job.stored.id ?? '');
    return jobs;
  }

  /**
   * Where a relay lane from `from`, which host `hostId` runs, to `to` ends: the other connected
   * host running `to`. Neither end may be migrating: its messages wait here (MPVM's flush).
   */
  relayLaneEnd(hostId: string, from: string, to: string): { hostId: string; link: HostLink } | ErrorBody {
    const { book, hosts } = this.#opts;
    const sender = book.task(from);
    if (!sender || settledHost(sender) !== hostId) return { code: 'E_FORBIDDEN', message: `${from} does not run on this host` };
    const standing = sender.job.vm.standing(to);
    if (standing === 'another-job') return { code: 'E_FORBIDDEN', message: `${from} may not address ${to}: another job` };
    if (standing === 'no-such-task') return { code: 'E_FORBIDDEN', message: `${from} may not address ${to}: no such task` };
    const [route] = this.locate([to]);
    const link = hosts.get(route?.hostId ?? null)?.link;
    if (!route?.hostId || !link) return { code: 'E_CONFLICT', message: `${to} is not running on a connected host now` };
    if (route.hostId === hostId) return { code: 'E_CONFLICT', message: `${to} runs on the same host` };
    return { hostId: route.hostId, link };
  }

  /**
   * A message envelope a host relays, in the name of `from` (for an acknowledgement, the task it
   * acknowledges for is `to`). The host must have run one end: the sender — maybe moved since, a
   * re-send after a broken channel — or the receiver, when it hands on a message that reached it
   * by a stale route. A sender that has ended is no longer known here: then a host that ran a task
   * of the job counts.
   */
  relay(hostId: string, kind: 'msg' | 'ack', from: string, to: string, destination: string, bytes: Uint8Array): ErrorBody | null {
    const { book, hosts } = this.#opts;
    if (jobOf(from) !== jobOf(to)) return { code: 'E_FORBIDDEN', message: `${from} may not address ${to}: another job` };
    // A receiver acknowledges what it read as it ends: when that ended the job, nobody waits for it.
    if (kind === 'ack' && !book.task(destination)) return null;
    const sender = book.task(from);
    const ranAnEnd = sender?.ranOn.has(hostId) || book.task(to)?.ranOn.has(hostId);
    const ranTheJob = () =>
      book.job(jobOf(from))?.ranOn.has(hostId) || [...(hosts.get(hostId)?.assigned.keys() ?? [])].some((tid) => jobOf(tid) === jobOf(from));
    if (!ranAnEnd && (sender || !ranTheJob())) {
      return { code: 'E_FORBIDDEN', message: sender ? `this host never ran ${from} or ${to}` : `this host runs no task of job ${jobOf(from)}` };
    }
    if (!this.router.route(destination, bytes, hostId)) {
      return { code: 'E_TOO_LARGE', message: 'the coordinator holds too many messages for tasks not started yet: from this host, of this job, or of all' };
    }
    return null;
  }

  #whereabouts(tid: string): Whereabouts {
    const task = this.#opts.book.task(tid);
    // A root task the job's window has not read in yet is pending: its messages wait for it.
    if (!task) return this.#opts.book.job(jobOf(tid))?.vm.standing(tid) === 'live' ? { kind: 'not-started' } : { kind: 'gone' };
    if (TERMINAL.has(task.state)) return { kind: 'gone' };
    // MPVM's flush: messages for a migrating task wait here until it runs again.
    const link = this.#opts.hosts.get(settledHost(task))?.link;
    return link ? { kind: 'held-by', send: (bytes) => link.sendBinary(bytes) } : { kind: 'not-started' };
  }
}
