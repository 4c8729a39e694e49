import { createHash, randomInt } from 'node:crypto';
import { type ErrorBody, type HostMessageOf, LIMITS, imageParts } from '@webpvm/vm-protocol';
import type { HostRegistry } from './host-registry.ts';
import type { JobBook } from './job-book.ts';
import { type HostRun, type KeptImage, TERMINAL, type TaskRun } from './model.ts';

export interface KeptImagesOptions {
  book: JobBook;
  hosts: HostRegistry;
  /** The whole image that came in `part` frames (migrations.ts), handed over once. */
  takeImage: (tid: string, attempt: number, image: number) => Uint8Array | null;
  /** `task` has a new restart point, which has what `delivered` says (recovery.ts `restartPointKept`). */
  restartPointKept: (task: TaskRun, delivered: ReadonlyMap<string, number>) => void;
  /** `task`'s restart point went with its keeper (recovery.ts `restartPointLost`). */
  restartPointLost: (task: TaskRun) => void;
}

/** An image on its way to a keeper, not yet stored there. */
interface Sending extends KeptImage {
  attempt: number;
  delivered: ReadonlyMap<string, number>;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * Checkpoint images too large for the coordinator (over LIMITS.checkpointImageBytes) are kept by
 * another volunteer's host, in its IndexedDB (docs/architecture.md, "A crash"). The coordinator
 * passes each on to a keeper of another volunteer, and keeps only its keeper, size and SHA-256;
 * the image is the task's restart point once the keeper has stored it and that record is stored
 * here. A task lost with its host gets it back through here, checked against its hash, so a
 * keeper that lies cannot change a task's state. A keeper that goes takes its images with it:
 * their tasks are asked for a new checkpoint, which goes to another keeper; a task whose host
 * and keeper are both gone before then cannot restart exactly, and fails.
 */
export class KeptImages {
  readonly #opts: KeptImagesOptions;
  /** Per tid, the latest image sent to a keeper that has not said it stored it. */
  readonly #sending = new Map<string, Sending>();
  /** Per tid, the attempt waiting for its kept image (`return-image`). */
  readonly #returning = new Map<string, number>();

  constructor(opts: KeptImagesOptions) {
    this.#opts = opts;
  }

  /** A checkpoint image of `task` too large to keep here, whole: it goes to a keeper, or an error when none can take it. */
  keep(task: TaskRun, image: Uint8Array, delivered: ReadonlyMap<string, number>): ErrorBody | null {
    const keeper = this.#keeperFor(task, image.byteLength);
    if (!keeper?.link) {
      return { code: 'E_TOO_LARGE', message: `no other volunteer can keep the ${image.byteLength}-byte checkpoint of ${task.tid} now: it stays on its tab only` };
    }
    const id = randomInt(1, 0x7fffffff);
    for (const part of imageParts(task.tid, task.attempt, image, id)) keeper.link.sendBinary(part);
    keeper.link.send({ type: 'keep-image', tid: task.tid, attempt: task.attempt, image: id, imageBytes: image.byteLength });
    this.#sending.set(task.tid, { hostId: keeper.hostId, image: id, bytes: image.byteLength, sha256: sha256(image), attempt: task.attempt, delivered });
    return null;
  }

  /** A keeper stored an image: it is the task's restart point once that is stored here, and then its senders hear what it covers. */
  stored(hostId: string, m: HostMessageOf<'image-kept'>): void {
    const { book, hosts } = this.#opts;
    const sending = this.#sending.get(m.tid);
    // an older image than the latest sent, or one this coordinator never sent (it restarted since)
    if (!sending || sending.hostId !== hostId || sending.image !== m.image) return;
    this.#sending.delete(m.tid);
    const task = book.task(m.tid);
    const keeper = hosts.get(hostId);
    // The attempt that took it has ended or moved on with a newer image: it is not needed.
    if (!task || !keeper || task.state !== 'running' || task.attempt !== sending.attempt) {
      hosts.send(hostId, { type: 'forget-images', tids: [m.tid] });
      return;
    }
    const { delivered, attempt: _, ...kept } = sending;
    book.keepImage(task, null, kept);
    // After a restart the keeper must be known by its identity to give the image back.
    hosts.store(keeper);
    this.#opts.restartPointKept(task, delivered);
  }

  /** `task` was leased to start from its kept image: its keeper sends it back through here. */
  request(task: TaskRun): void {
    const kept = task.start.kept;
    if (!kept) return;
    this.#returning.set(task.tid, task.attempt);
    this.#opts.hosts.send(kept.hostId, { type: 'return-image', tid: task.tid, attempt: task.attempt, image: kept.image });
  }

  /** Whether this `part` frame from `hostId` is a piece of the kept image it is giving back for `tid`'s attempt. */
  returning(hostId: string, header: { tid: string; attempt: number; image?: number }): boolean {
    const kept = this.#opts.book.task(header.tid)?.start.kept;
    return kept?.hostId === hostId && kept.image === header.image && this.#returning.get(header.tid) === header.attempt;
  }

  /** The keeper gave the image back: checked against its hash, it goes on to the task's host. */
  returned(hostId: string, m: HostMessageOf<'image-returned'>): ErrorBody | null {
    const { book, hosts } = this.#opts;
    const image = this.#opts.takeImage(m.tid, m.attempt, m.image);
    const task = book.task(m.tid);
    const kept = task?.start.kept;
    if (!task || !kept || kept.hostId !== hostId || kept.image !== m.image || this.#returning.get(m.tid) !== m.attempt) return null;
    if (!image || image.byteLength !== kept.bytes || sha256(image) !== kept.sha256) {
      this.#unrecoverable(task, `the volunteer that kept its ${kept.bytes}-byte checkpoint gave back another`);
      return { code: 'E_BAD_FRAME', message: `the image of ${m.tid} given back is not the one kept` };
    }
    this.#returning.delete(m.tid);
    const holder = task.state === 'running' && task.attempt === m.attempt ? hosts.get(task.hostId) : undefined;
    if (holder?.link) for (const part of imageParts(task.tid, task.attempt, image)) holder.link.sendBinary(part);
    return null;
  }

  /** The task's host still waits for the kept image: its keeper is asked again. */
  missing(task: TaskRun): void {
    if (this.#returning.get(task.tid) === task.attempt) this.request(task);
  }

  /**
   * A keeper went for good: the images it kept are gone. A task running on is asked for a new
   * checkpoint, and until one is kept it cannot be restarted exactly; one that waited to start
   * from its image fails now.
   */
  keeperGone(keeper: HostRun): void {
    const { book } = this.#opts;
    for (const [tid, sending] of this.#sending) if (sending.hostId === keeper.hostId) this.#sending.delete(tid);
    for (const tid of [...keeper.kept.keys()]) {
      const task = book.task(tid);
      if (task?.start.kept?.hostId !== keeper.hostId) continue;
      const bytes = task.start.kept.bytes;
      book.keepImage(task, null);
      const waiting = (task.state === 'pending' && !task.start.imageAway) || (task.state === 'running' && this.#returning.get(tid) === task.attempt);
      if (waiting) {
        this.#unrecoverable(task, `its host was lost, and then the volunteer that kept its ${bytes}-byte checkpoint`);
        continue;
      }
      this.#opts.restartPointLost(task);
    }
    keeper.kept.clear();
  }

  /** After a welcome, the images a host says it keeps: those it should not are forgotten. */
  reconcile(hostId: string, tids: readonly string[]): void {
    const forget = tids.filter((tid) => {
      const task = this.#opts.book.task(tid);
      return task?.start.kept?.hostId !== hostId && this.#sending.get(tid)?.hostId !== hostId;
    });
    if (forget.length) this.#opts.hosts.send(hostId, { type: 'forget-images', tids: forget });
  }

  /** The task ended: nothing of it waits for its image any more. */
  ended(tid: string): void {
    this.#sending.delete(tid);
    this.#returning.delete(tid);
  }

  #unrecoverable(task: TaskRun, why: string): void {
    const { book, hosts } = this.#opts;
    this.#returning.delete(task.tid);
    if (TERMINAL.has(task.state)) return;
    if (task.state === 'running') {
      hosts.sendCancel(task.hostId, [{ tid: task.tid, attempt: task.attempt }], why);
      hosts.release(task.hostId, task.tid);
    }
    book.fail(task, { code: 'E_TASK_LOST', message: `${task.tid} cannot be restarted exactly: ${why}` });
  }

  /**
   * A connected host of another volunteer than the task's (of another host at least), not
   * draining, with room for the image beside what it keeps and is being sent: the one keeping
   * least, preferring the task's keeper now, which replaces its image in place.
   */
  #keeperFor(task: TaskRun, bytes: number): HostRun | null {
    const { hosts } = this.#opts;
    const owner = hosts.get(task.hostId);
    const keeping = (host: HostRun) => {
      let total = 0;
      for (const [tid, kept] of host.kept) if (tid !== task.tid) total += kept;
      for (const [tid, sending] of this.#sending) if (sending.hostId === host.hostId && tid !== task.tid) total += sending.bytes;
      return total;
    };
    // A draining host is on its way out: what it kept would go with it.
    const candidates = [...hosts.all()].filter((h) => h.link !== null && !h.draining && h.hostId !== task.hostId && keeping(h) + bytes <= LIMITS.keptImageBytes);
    const others = candidates.filter((h) => h.volunteerId !== owner?.volunteerId);
    const pool = others.length ? others : candidates;
    const current = pool.find((h) => h.hostId === task.start.kept?.hostId);
    if (current) return current;
    let best: HostRun | null = null;
    for (const h of pool) if (!best || keeping(h) < keeping(best)) best = h;
    return best;
  }
}
