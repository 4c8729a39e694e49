import { type CoordinatorMessageOf, type ErrorBody, type HostMessageOf, LIMITS, decodeImage } from '@webpvm/vm-protocol';
import type { HostRegistry } from './host-registry.ts';
import type { JobBook } from './job-book.ts';
import type { KeptImages } from './kept-images.ts';
import type { TaskRun } from './model.ts';
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
 * send it again what their logs hold; a full log answered with a checkpoint request.
 */
export class Recovery {
  readonly #opts: RecoveryOptions;

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
    const { book, hosts } = this.#opts;
    if (!book.runningOn(hostId, m.tid, m.attempt)) return;
    const receiver = book.task(m.to);
    if (!receiver || receiver.job !== book.task(m.tid)?.job) return;
    if (m.dropped) receiver.unlogged = true;
    if (receiver.state === 'running' && receiver.hostId) hosts.send(receiver.hostId, { type: 'checkpoint-due', tasks: [{ tid: receiver.tid, attempt: receiver.attempt }] });
  }

  /** `task` was lost with its host and starts again from its restart point: its job's tasks send it again what their logs hold. */
  restarted(task: TaskRun): void {
    const holders = new Set<string>();
    for (const other of task.job.resident) if (other !== task && other.state === 'running' && other.hostId) holders.add(other.hostId);
    for (const hostId of holders) this.#opts.hosts.send(hostId, { type: 'restarted', tids: [task.tid] });
  }

  /** Tells each sender's host that `to`'s restart point has what it sent up to these seqs. */
  #covered(to: string, delivered: ReadonlyMap<string, number>): void {
    const byHost = new Map<string, CoveredItem[]>();
    for (const [from, seq] of delivered) {
      const sender = this.#opts.book.task(from);
      if (seq < 1 || sender?.state !== 'running' || !sender.hostId) continue;
      const items = byHost.get(sender.hostId) ?? [];
      items.push({ tid: from, to, seq });
      byHost.set(sender.hostId, items);
    }
    for (const [hostId, items] of byHost) {
      for (let i = 0; i < items.length; i += LIMITS.itemsPerBatch) this.#opts.hosts.send(hostId, { type: 'covered', items: items.slice(i, i + LIMITS.itemsPerBatch) });
    }
  }
}
