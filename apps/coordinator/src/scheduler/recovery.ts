import { type CoordinatorMessageOf, type ErrorBody, type HostMessageOf, LIMITS, decodeImage, parseTid } from '@webpvm/vm-protocol';
import type { HostRegistry } from './host-registry.ts';
import type { JobBook } from './job-book.ts';
import type { KeptImages } from './kept-images.ts';
import { type HostRun, TERMINAL, type TaskRun } from './model.ts';
import { notRunningHere } from './vm-services.ts';
import type { WriteBehind } from './write-behind.ts';

export interface RecoveryOptions {
  book: JobBook;
  hosts: HostRegistry;
  /** The whole image that came in `part` frames (migrations.ts), handed over once. */
  takeImage: (tid: string, attempt: number, image: number) => Uint8Array | null;
  writes: WriteBehind;
  /** Where an image too large to hold here goes. */
  kept: () => KeptImages;
}

type CoveredItem = CoordinatorMessageOf<'covered'>['items'][number];

/**
 * Crash recovery, as the coordinator sees it (MPICH-V's sender-based message logging): each
 * message-passing task's checkpoint image — state, unread messages, per-sender seqs, its own
 * sender log — kept here as its restart point; its senders told what that image covers, so their
 * logs forget it; a task lost with its host restarted from its image, the tasks of its job told to
 * send it again what their logs hold; a full log answered with a checkpoint request. A task's log
 * outlives the task on the host where it ended (`ended-log`): those hosts are told the same.
 */
export class Recovery {
  readonly #opts: RecoveryOptions;
  /** Per unfinished job, per host that keeps the sender logs of its tasks that ended there, those tasks. */
  readonly #logKeepers = new Map<string, Map<string, Set<string>>>();

  constructor(opts: RecoveryOptions) {
    this.#opts = opts;
  }

  /** A checkpoint image whose parts came just before: kept as the task's restart point, and what it covers told to its senders. */
  checkpointImage(hostId: string, m: HostMessageOf<'checkpoint-image'>): ErrorBody | null {
    const { book } = this.#opts;
    const image = this.#opts.takeImage(m.tid, m.attempt, m.image);
    const task = book.runningOn(hostId, m.tid, m.attempt);
    if (!task) return notRunningHere(m.tid, m.attempt);
    if (!image || image.byteLength !== m.imageBytes) return { code: 'E_BAD_FRAME', message: `the checkpoint image of ${m.tid} did not arrive whole` };
    const decoded = decodeImage(image);
    if (!decoded.ok) return decoded.error;
    if (decoded.value.tid !== m.tid) return { code: 'E_FORBIDDEN', message: `${m.tid} sent a checkpoint image of ${decoded.value.tid}` };
    book.deadlines.alive(task);
    // A replica's state is its volunteer's word: another replica must not start from it.
    if (task.quorum) return null;
    const delivered = decoded.value.delivered;
    if (image.byteLength > LIMITS.checkpointImageBytes) return this.#opts.kept().keep(task, image, delivered);
    if (!book.keepImage(task, image)) {
      return { code: 'E_TOO_LARGE', message: `the coordinator keeps as many images as it can: ${m.tid} restarts from its last one` };
    }
    this.restartPointKept(task, delivered);
    return null;
  }

  /**
   * `task`'s new restart point — an image held here or by a keeper — has everything its senders
   * sent it up to `delivered`: it can be restarted exactly again, and once a restarted
   * coordinator would know that point too, its senders' logs forget what it covers.
   */
  restartPointKept(task: TaskRun, delivered: ReadonlyMap<string, number>): void {
    task.unlogged = false;
    this.#opts.writes.schedule(() => this.#covered(task.tid, delivered));
  }

  /**
   * A sender's log holds too much for `m.to`: its host is asked for a checkpoint of it. With
   * `dropped`, the log let go of messages the receiver's restart point needs.
   */
  logFull(hostId: string, m: HostMessageOf<'log-full'>): void {
    const { book } = this.#opts;
    if (!book.runningOn(hostId, m.tid, m.attempt)) return;
    const receiver = book.task(m.to);
    if (!receiver || receiver.job !== book.task(m.tid)?.job) return;
    if (m.dropped) this.restartPointLost(receiver);
    else this.#checkpointNow(receiver);
  }

  /**
   * `task`'s restart point no longer has all it was sent since (its keeper, or a log of what it
   * received, went): it cannot be restarted exactly (`unlogged`) until its next checkpoint is
   * kept, which it is asked for now.
   */
  restartPointLost(task: TaskRun): void {
    task.unlogged = true;
    this.#checkpointNow(task);
  }

  #checkpointNow(task: TaskRun): void {
    if (task.state === 'running' && task.hostId) this.#opts.hosts.send(task.hostId, { type: 'checkpoint-due', tasks: [{ tid: task.tid, attempt: task.attempt }] });
  }

  /** `task` was lost with its host and starts again from its restart point: its job's tasks send it again what their logs hold. */
  restarted(task: TaskRun): void {
    for (const hostId of this.#holders(task.job.stored.id)) this.#opts.hosts.send(hostId, { type: 'restarted', tids: [task.tid] });
  }

  /**
   * `host` connected again with its tasks: what was on its way to them through the relay may have
   * been lost with its connection, so the other hosts of their jobs send them again what it did
   * not acknowledge (`reconnected`).
   */
  reattached(host: HostRun): void {
    const byJob = new Map<string, string[]>();
    for (const tid of host.assigned.keys()) {
      const job = this.#opts.book.task(tid)?.job.stored.id;
      if (!job) continue;
      const tids = byJob.get(job) ?? [];
      tids.push(tid);
      byJob.set(job, tids);
    }
    for (const [job, tids] of byJob) {
      for (const hostId of this.#holders(job)) {
        if (hostId === host.hostId) continue;
        for (let i = 0; i < tids.length; i += LIMITS.itemsPerBatch) this.#opts.hosts.send(hostId, { type: 'reconnected', tids: tids.slice(i, i + LIMITS.itemsPerBatch) });
      }
    }
  }

  /**
   * `m.tid` resumes on `hostId` from an image that names messages it read on lanes, not their
   * bytes: the hosts of those senders, and those keeping their ended logs, send them again.
   */
  refill(hostId: string, m: HostMessageOf<'refill'>): void {
    const { book } = this.#opts;
    const task = book.runningOn(hostId, m.tid, m.attempt);
    if (!task) return;
    const jobId = task.job.stored.id;
    const keepers = this.#logKeepers.get(jobId) ?? new Map<string, Set<string>>();
    const byHost = new Map<string, { tid: string; after: number }[]>();
    for (const from of m.from) {
      if (parseTid(from.tid).jobId !== jobId) continue;
      const sender = book.task(from.tid);
      const hosts = [...keepers].filter(([, tids]) => tids.has(from.tid)).map(([keeper]) => keeper);
      if (sender?.state === 'running' && sender.hostId) hosts.push(sender.hostId);
      for (const host of hosts) byHost.set(host, [...(byHost.get(host) ?? []), from]);
    }
    for (const [host, from] of byHost) this.#opts.hosts.send(host, { type: 'send-again', to: m.tid, from });
  }

  /** `hostId` keeps the log of task `tid`, which ended there (it reported what the task sent). */
  logKept(hostId: string, tid: string): void {
    const jobId = parseTid(tid).jobId;
    if (this.#opts.book.job(jobId)?.stored.finishedAt !== null) return;
    const keepers = this.#logKeepers.get(jobId) ?? new Map<string, Set<string>>();
    this.#logKeepers.set(jobId, keepers);
    const tids = keepers.get(hostId) ?? new Set<string>();
    keepers.set(hostId, tids.add(tid));
  }

  /**
   * After a welcome, `hostId` lists the ended tasks whose logs it keeps (a restarted coordinator
   * learns them so): the answer names the jobs to forget, those that ended or that it never ran;
   * null when there are none.
   */
  logsKept(hostId: string, tids: readonly string[]): CoordinatorMessageOf<'forget-logs'> | null {
    const forget = new Set<string>();
    for (const tid of tids) {
      const job = this.#opts.book.job(parseTid(tid).jobId);
      if (job?.stored.finishedAt === null && job.ranOn.has(hostId)) this.logKept(hostId, tid);
      else forget.add(parseTid(tid).jobId);
    }
    return forget.size ? { type: 'forget-logs', jobs: [...forget] } : null;
  }

  /** `jobId` ended: its ended tasks' logs are no longer needed. */
  jobEnded(jobId: string): void {
    for (const hostId of this.#logKeepers.get(jobId)?.keys() ?? []) this.#opts.hosts.send(hostId, { type: 'forget-logs', jobs: [jobId] });
    this.#logKeepers.delete(jobId);
  }

  /**
   * `host` is gone for good, and the logs of the tasks that ended there with it: their receivers
   * can no longer be sent those messages again. Each is asked for a checkpoint, and cannot be
   * restarted exactly until one is kept (`unlogged`): lost before, it fails with a clear error
   * rather than wait for messages nobody has.
   */
  hostGone(host: HostRun): void {
    const { book } = this.#opts;
    for (const [jobId, keepers] of this.#logKeepers) {
      const ended = keepers.get(host.hostId);
      if (!ended) continue;
      keepers.delete(host.hostId);
      const vm = book.job(jobId)?.vm;
      for (const tid of ended) {
        for (const to of vm?.sentBy(tid).keys() ?? []) {
          const receiver = book.task(to);
          if (receiver && !TERMINAL.has(receiver.state)) this.restartPointLost(receiver);
        }
      }
    }
  }

  /** The hosts that hold what tasks of `jobId` sent: those running one, and those keeping ended ones' logs. */
  #holders(jobId: string): Set<string> {
    const holders = new Set(this.#logKeepers.get(jobId)?.keys());
    for (const task of this.#opts.book.job(jobId)?.resident ?? []) if (task.state === 'running' && task.hostId) holders.add(task.hostId);
    return holders;
  }

  /** Tells each sender's host that `to`'s restart point has what it sent up to these seqs. */
  #covered(to: string, delivered: ReadonlyMap<string, number>): void {
    const byHost = new Map<string, CoveredItem[]>();
    const add = (hostId: string, item: CoveredItem) => {
      const items = byHost.get(hostId) ?? [];
      items.push(item);
      byHost.set(hostId, items);
    };
    for (const [from, seq] of delivered) {
      if (seq < 1) continue;
      const sender = this.#opts.book.task(from);
      if (sender?.state === 'running' && sender.hostId) add(sender.hostId, { tid: from, to, seq });
      // A sender that ended keeps its log on the host where it ended, one of these.
      else if (!sender || TERMINAL.has(sender.state)) {
        for (const [hostId, ended] of this.#logKeepers.get(parseTid(from).jobId) ?? []) if (ended.has(from)) add(hostId, { tid: from, to, seq });
      }
    }
    for (const [hostId, items] of byHost) {
      for (let i = 0; i < items.length; i += LIMITS.itemsPerBatch) this.#opts.hosts.send(hostId, { type: 'covered', items: items.slice(i, i + LIMITS.itemsPerBatch) });
    }
  }
}
