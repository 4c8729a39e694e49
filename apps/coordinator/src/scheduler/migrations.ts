import { type ErrorBody, type HostMessageOf, ImageAssembly, LIMITS, type MigrationReason, type TaskRef, parseTid } from '@webpvm/vm-protocol';
import type { HostRegistry } from './host-registry.ts';
import type { KeptImages } from './kept-images.ts';
import type { JobBook } from './job-book.ts';
import { type Migration, isLeaving } from './model.ts';
import { notRunningHere } from './vm-services.ts';

export interface MigrationsOptions {
  now: () => number;
  monotonic: () => number;
  book: JobBook;
  hosts: HostRegistry;
  dispatch: () => void;
  /** Takes in the parts of images their keepers give back. */
  kept: () => KeptImages;
}

/**
 * MPVM's migration, as the coordinator sees it: the event (a host says tasks leave, or an order
 * is given), the flush (messages for a leaving task wait in the relay router), the transfer (its
 * image comes here in pieces, or goes host to host over a data channel) and the restart (the
 * task is placed at once, on the host named at the event when it can take it).
 */
export class Migrations {
  readonly #opts: MigrationsOptions;
  /** Images arriving in pieces from hosts whose tasks migrate. */
  readonly #images = new ImageAssembly(LIMITS.imageBytes * 4);

  constructor(opts: MigrationsOptions) {
    this.#opts = opts;
  }

  /** MPVM's event: these tasks leave their host; messages for them are held here until they run again. */
  migrating(hostId: string, refs: TaskRef[], reason: MigrationReason): void {
    for (const ref of refs) {
      const task = this.#opts.book.runningOn(hostId, ref.tid, ref.attempt);
      if (!task || task.migration) continue;
      if (task.quorum) {
        this.#opts.book.replication.reclaimed(task, ref.attempt);
        continue;
      }
      const to = this.#opts.hosts.leastLoaded(hostId);
      task.migration = this.#newMigration(reason, hostId, to?.hostId ?? null);
      // The image may go straight there, host to host, as the parts of the attempt it will run as;
      // the destination hears first which peer it comes from, and takes its pieces from no other.
      const fromPeer = this.#opts.hosts.get(hostId)?.peerId ?? null;
      const direct = to?.peerId && fromPeer ? to : null;
      if (direct && fromPeer) this.#opts.hosts.send(direct.hostId, { type: 'image-coming', tid: task.tid, attempt: task.attempt + 1, peerId: fromPeer });
      this.#opts.hosts.send(hostId, { type: 'destination', tid: task.tid, attempt: task.attempt + 1, peerId: direct?.peerId ?? null });
    }
  }

  /**
   * A piece of the image of a task leaving this host; or, from a host the task ran on, a piece
   * of an image that did not arrive over a data channel, handed on to the task's host now.
   */
  imagePart(hostId: string, header: { tid: string; attempt: number; index: number; count: number; image?: number }, piece: Uint8Array, frame: Uint8Array): ErrorBody | null {
    const { book, hosts } = this.#opts;
    if (book.runningOn(hostId, header.tid, header.attempt) || this.#opts.kept().returning(hostId, header)) return this.#images.add(header, piece);
    const task = book.task(header.tid);
    const holder = task?.state === 'running' && task.attempt === header.attempt && task.ranOn.has(hostId) ? hosts.get(task.hostId) : undefined;
    if (!holder?.link) return notRunningHere(header.tid, header.attempt);
    holder.link.sendBinary(frame);
    return null;
  }

  /** The whole image `image` of this attempt that came in parts, handed over once (a checkpoint image, recovery.ts). */
  takeImage(tid: string, attempt: number, image: number): Uint8Array | null {
    return this.#images.take(tid, attempt, image);
  }

  /** A host still waits for the image of an assignment: its old host sends it again through here. */
  imageMissing(hostId: string, tid: string, attempt: number): void {
    const task = this.#opts.book.runningOn(hostId, tid, attempt);
    const away = task?.start.imageAway;
    if (away) this.#opts.hosts.send(away.from, { type: 'send-image', tid, attempt });
    else if (task) this.#opts.kept().missing(task);
  }

  /**
   * The task has left its host, its image (if any) received whole: it is placed again at once,
   * on another host when there is one, and starts from the image.
   */
  migrated(hostId: string, m: HostMessageOf<'migrated'>): ErrorBody | null {
    const { book, hosts } = this.#opts;
    const task = book.runningOn(hostId, m.tid, m.attempt);
    if (!task) return notRunningHere(m.tid, m.attempt);
    if (task.quorum) {
      // its `migrating` went astray: a replica does not migrate all the same
      this.#images.forget(m.tid);
      book.replication.reclaimed(task, m.attempt);
      return null;
    }
    let refused: ErrorBody | null = null;
    if (m.imageBytes !== null && m.via === 'channel') {
      // The image kept here stays the restart point should that one never arrive (recovery.ts).
      task.start.imageAway = { bytes: m.imageBytes, from: hostId };
    } else if (m.imageBytes !== null) {
      task.start.imageAway = null;
      const image = this.#images.take(m.tid, m.attempt);
      if (!image || image.byteLength !== m.imageBytes) {
        refused = { code: 'E_BAD_FRAME', message: `the image of ${m.tid} did not arrive whole: it restarts from its last checkpoint` };
      } else if (!book.keepImage(task, image)) {
        refused = { code: 'E_TOO_LARGE', message: `the coordinator keeps as many images as it can: ${m.tid} restarts from its last checkpoint` };
      }
    }
    this.#images.forget(m.tid);
    // A task can leave without its event having reached here (its host lost the frame): it starts now.
    const migration = task.migration ?? this.#newMigration('order', hostId, null);
    task.migration = { ...migration, via: m.via, left: true, obtrusivenessMs: m.obtrusivenessMs, frozen: m.frozen, bytes: m.imageBytes ?? 0 };
    hosts.release(hostId, task.tid);
    task.runs.delete(m.attempt);
    book.transition(task, 'pending');
    task.hostId = null;
    task.job.placeNow.push(task);
    this.#opts.dispatch();
    return refused;
  }

  /** The migrated task runs again: its migration is recorded with its timings. */
  resumed(hostId: string, tid: string, attempt: number): void {
    const task = this.#opts.book.runningOn(hostId, tid, attempt);
    if (!task?.migration) return;
    task.start.imageAway = null;
    this.#opts.book.recordMigration(task, hostId);
  }

  /** Orders the task to move (`POST /api/tasks/:tid/migrate`): its host freezes it and sends its image. */
  order(tid: string): { hostId: string } | ErrorBody {
    const task = this.#opts.book.task(tid);
    const live = this.#opts.book.job(parseTid(tid).jobId)?.vm.standing(tid) === 'live';
    if (!task && !live) return { code: 'E_NOT_FOUND', message: `no task ${tid} in an unfinished job` };
    const host = task?.state === 'running' ? this.#opts.hosts.get(task.hostId) : undefined;
    if (!task || !host?.link || isLeaving(task)) return { code: 'E_CONFLICT', message: `${tid} is not running on a connected host now` };
    host.link.send({ type: 'migrate', tasks: [{ tid, attempt: task.attempt }] });
    return { hostId: host.hostId };
  }

  /**
   * Drains a host (`POST /api/hosts/:id/drain`): it is given no task while `draining`, and each
   * task running on it is ordered to move. Returns how many were ordered, or null for an unknown host.
   */
  drain(hostId: string, draining: boolean): number | null {
    const host = this.#opts.hosts.get(hostId);
    if (!host) return null;
    host.draining = draining;
    if (!draining) {
      this.#opts.dispatch();
      return 0;
    }
    let ordered = 0;
    for (const tid of host.assigned.keys()) if (!('code' in this.order(tid))) ordered++;
    return ordered;
  }

  #newMigration(reason: MigrationReason, from: string, to: string | null): Migration {
    return { reason, from, to, via: 'coordinator', left: false, since: this.#opts.now(), began: this.#opts.monotonic(), obtrusivenessMs: 0, frozen: false, bytes: 0 };
  }
}
