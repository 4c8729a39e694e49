import { LIMITS, encodeImage, imageParts, type Checkpoint, type HostMessage, type ImageCheckpoint, type TaskRef } from '@webpvm/vm-protocol';
import { forgetCheckpoint, pruneCheckpoints, saveCheckpoint } from './checkpoint-store.ts';
import type { KeyValueStore } from './kv-store.ts';
import type { Inboxes } from './messaging/inboxes.ts';
import type { WorkerCheckpoint } from './slot-pool.ts';
import { wireValueProblem } from './wire-value.ts';

export interface CheckpointKeeperOptions {
  store: KeyValueStore;
  inboxes: Pick<Inboxes, 'checkpointed' | 'unread'>;
  /** Sends to the coordinator; false while it is away. */
  send(message: HostMessage): boolean;
  /** Sends a binary frame (a part of an image) to the coordinator; false while it is away. */
  sendBinary(bytes: Uint8Array): boolean;
  /** The tasks this page holds now (slot-pool.ts `held`): a checkpoint of any other attempt is not sent. */
  held(): TaskRef[];
}

/** The checkpoint a local task would restart from, and the byte segments of its state. */
interface LatestCheckpoint {
  checkpoint: Required<Checkpoint>;
  stateBuffers: Uint8Array[];
  /** The task's sender log at the checkpoint (worker.ts `WorkerCheckpoint.log`). */
  log: Uint8Array[];
}

/** A checkpoint to send the coordinator: as JSON, or as an image of what a crash restart needs. */
type Unsent = { ref: TaskRef; checkpoint: Checkpoint } | { ref: TaskRef; image: Uint8Array };

/**
 * A checkpoint image too large for the coordinator goes to another volunteer's tab through it
 * (`keep-image`) at most this often per task, unless one was asked for (`checkpoint-due`): each
 * costs a copy over the volunteer's uplink.
 */
const LARGE_IMAGE_EVERY_MS = 10_000;

const sameRef = (a: TaskRef, b: TaskRef) => a.tid === b.tid && a.attempt === b.attempt;

/**
 * Each local task's latest checkpoint: the one it would restart from here, and the one its image
 * carries when it moves. Periodic checkpoints are also stored in IndexedDB (checkpoint-store.ts)
 * and sent to the coordinator, which restarts the task from it if this host is lost; one that
 * cannot be sent while the coordinator is away waits for the next welcome.
 */
export class CheckpointKeeper {
  #options: CheckpointKeeperOptions;
  /** Per local task, the checkpoint its inbox log is relative to (see Inboxes.checkpointed). */
  #latest = new Map<string, LatestCheckpoint>();
  /** Checkpoints stored while offline, sent after the next welcome. */
  #unsent = new Map<string, Unsent>();
  /**
   * Tids with a checkpoint in IndexedDB, with the latest attempt that stored one (0: stored before
   * this page started): most tasks never store one, and forgetting theirs must not cost a read of
   * the store each.
   */
  #stored = new Map<string, number>();
  /** Checkpoint images sent: each one's parts carry its number. */
  #imagesSent = 0;
  /** Per task, when its last image over LIMITS.checkpointImageBytes was made (performance.now). */
  #largeAt = new Map<string, number>();
  /** Tasks asked for a checkpoint: their next image goes whatever its size. */
  #due = new Set<string>();

  constructor(options: CheckpointKeeperOptions) {
    this.#options = options;
  }

  /** On page start no task runs yet: stored checkpoints of tasks with no pending result go. */
  async prune(keepTids: Set<string>): Promise<void> {
    for (const tid of await pruneCheckpoints(this.#options.store, keepTids)) this.#stored.set(tid, 0);
  }

  /** The task's log now starts from this checkpoint: a restart from it replays what follows. */
  accept(tid: string, taken: WorkerCheckpoint): void {
    this.#latest.set(tid, { checkpoint: taken.checkpoint, stateBuffers: taken.stateBuffers, log: taken.log });
    this.#options.inboxes.checkpointed(tid, taken.received, taken.unread, taken.unreadLane);
  }

  /**
   * A periodic checkpoint: kept here for a migration, stored in IndexedDB, and sent to the
   * coordinator for a restart after the loss of this host. A task that talks to others, or whose
   * state holds bytes, sends an image (`checkpoint-image`): with its state's bytes, what it had
   * not read, its per-sender seqs and its sender log, a crash restart lands exactly where it was
   * (docs/architecture.md, "A crash"); so does a state too large for a JSON frame. An image over
   * LIMITS.checkpointImageBytes, which another volunteer's tab keeps, goes at most every
   * LARGE_IMAGE_EVERY_MS; one over LIMITS.imageBytes moves only as a migration's image.
   */
  periodic(ref: TaskRef, taken: WorkerCheckpoint): void {
    this.accept(ref.tid, taken);
    const { checkpoint, stateBuffers } = taken;
    const asJson = !this.#needsImage(taken) && !wireValueProblem(checkpoint, 'checkpoint');
    const unsent = asJson ? { ref, checkpoint } : this.#image(ref, taken);
    this.#stored.set(ref.tid, ref.attempt);
    saveCheckpoint(this.#options.store, ref, checkpoint, stateBuffers)
      .catch((error: unknown) => console.warn('webpvm: could not store a checkpoint', error))
      .then(() => {
        if (unsent && this.#options.held().some((h) => sameRef(h, ref))) this.#send(unsent);
      });
  }

  #needsImage({ checkpoint, stateBuffers, delivered, log }: WorkerCheckpoint): boolean {
    return stateBuffers.length > 0 || delivered.length > 0 || log.length > 0 || checkpoint.sent.length > 0;
  }

  /** The task's next checkpoint image goes whatever its size: a sender's log for it is full. */
  due(tid: string): void {
    this.#due.add(tid);
  }

  /** The checkpoint as a crash restart needs it; null when too large, or large and sent not long ago. */
  #image(ref: TaskRef, taken: WorkerCheckpoint): Unsent | null {
    const { checkpoint, stateBuffers, delivered, log, received } = taken;
    const now = performance.now();
    const bytes = [...stateBuffers, ...log].reduce((n, b) => n + b.byteLength, 0);
    const recently = now - (this.#largeAt.get(ref.tid) ?? -Infinity) < LARGE_IMAGE_EVERY_MS;
    if (bytes > LIMITS.checkpointImageBytes && recently && !this.#due.has(ref.tid)) return null;
    const image = encodeImage({
      tid: ref.tid,
      checkpoint: { state: { json: checkpoint.state, buffers: stateBuffers }, rng: checkpoint.rng, sent: checkpoint.sent, requests: checkpoint.requests },
      delivered: new Map(delivered),
      mailbox: this.#options.inboxes.unread(ref.tid, received),
      pending: [],
      log,
    });
    this.#due.delete(ref.tid);
    if (image.byteLength > LIMITS.imageBytes) return null;
    if (image.byteLength > LIMITS.checkpointImageBytes) this.#largeAt.set(ref.tid, now);
    return { ref, image };
  }

  /** A task assigned to resume from the coordinator's copy of its checkpoint. */
  resumeFrom(tid: string, checkpoint: Checkpoint): void {
    this.#latest.set(tid, { checkpoint: withCounters(checkpoint), stateBuffers: [], log: [] });
  }

  /** The sender log a leaving task's image carries: the one of the checkpoint it restarts from. */
  logForImage(tid: string): Uint8Array[] {
    return this.#latest.get(tid)?.log ?? [];
  }

  /** The checkpoint a leaving task's image carries: the latest, or null to start over. */
  forImage(tid: string): ImageCheckpoint | null {
    const latest = this.#latest.get(tid) ?? null;
    return (
      latest && {
        state: { json: latest.checkpoint.state, buffers: latest.stateBuffers },
        rng: latest.checkpoint.rng,
        sent: latest.checkpoint.sent,
        requests: latest.checkpoint.requests,
      }
    );
  }

  /** A task arrived with an image: its checkpoint is the latest here, and what the task resumes from. */
  fromImage(tid: string, checkpoint: ImageCheckpoint | null, log: Uint8Array[]): Required<Checkpoint> | null {
    const resume = checkpoint && { state: checkpoint.state.json, rng: checkpoint.rng, sent: checkpoint.sent, requests: checkpoint.requests };
    if (resume) this.#latest.set(tid, { checkpoint: resume, stateBuffers: checkpoint.state.buffers, log });
    else this.#latest.delete(tid);
    return resume;
  }

  /** After a welcome: the checkpoints the coordinator missed go now, for the attempts still held here. */
  welcome(): void {
    const held = this.#options.held();
    for (const [tid, unsent] of this.#unsent) {
      this.#unsent.delete(tid);
      if (held.some((h) => sameRef(h, unsent.ref))) this.#send(unsent);
    }
  }

  /** The task ended or left this page: its checkpoints are no longer this page's to keep or send. */
  forget(tid: string): void {
    this.#unsent.delete(tid);
    this.#latest.delete(tid);
    this.#largeAt.delete(tid);
    this.#due.delete(tid);
  }

  /** The stored checkpoint of `ref` goes (its result was acknowledged, or it was cancelled); a later attempt's stays. */
  async forgetStored(ref: TaskRef): Promise<void> {
    if (!this.#stored.has(ref.tid)) return;
    await forgetCheckpoint(this.#options.store, ref);
    // A later attempt's checkpoint stays stored, and marked.
    if ((this.#stored.get(ref.tid) ?? Infinity) <= ref.attempt) this.#stored.delete(ref.tid);
  }

  #send(unsent: Unsent): void {
    const { ref } = unsent;
    const sent = 'image' in unsent ? this.#sendImage(ref, unsent.image) : this.#options.send({ type: 'checkpoint', tid: ref.tid, attempt: ref.attempt, checkpoint: unsent.checkpoint });
    if (sent) this.#unsent.delete(ref.tid);
    else this.#unsent.set(ref.tid, unsent);
  }

  /** The image's parts, then the message that names it; false when the coordinator went away before the last. */
  #sendImage(ref: TaskRef, image: Uint8Array): boolean {
    const id = ++this.#imagesSent;
    for (const part of imageParts(ref.tid, ref.attempt, image, id)) if (!this.#options.sendBinary(part)) return false;
    return this.#options.send({ type: 'checkpoint-image', tid: ref.tid, attempt: ref.attempt, image: id, imageBytes: image.byteLength });
  }
}

function withCounters(checkpoint: Checkpoint): Required<Checkpoint> {
  return { ...checkpoint, sent: checkpoint.sent ?? [], requests: checkpoint.requests ?? 0 };
}
