import { LIMITS } from '@webpvm/vm-protocol';
import type { Logger } from 'pino';

/** Where a task is, as far as delivery is concerned. */
export type Whereabouts =
  | { kind: 'held-by'; send: (bytes: Uint8Array) => void }
  | { kind: 'not-started' }
  | { kind: 'gone' };

/** Bytes of messages the coordinator keeps for tasks that have not started yet, all jobs together. */
const HELD_BYTES_LIMIT = 512 * 1024 * 1024;
/**
 * The share of it one job may take: room for two of the largest messages, so that one job's tasks
 * cannot fill what every other job's relay needs.
 */
const HELD_BYTES_PER_JOB = 2 * LIMITS.messageBytes;

const jobOf = (tid: string) => tid.slice(0, tid.indexOf('.'));

/**
 * The relay path between tasks: envelopes that hosts send through the coordinator go to the host
 * that holds the receiving task. A message for a task that has not started yet is kept, in order,
 * and handed over right after the task's assignment; one for a task that has ended is dropped.
 */
export class RelayRouter {
  private readonly held = new Map<string, Uint8Array[]>();
  private heldBytes = 0;
  private readonly heldByJob = new Map<string, number>();
  relayed = 0;
  dropped = 0;

  constructor(
    private readonly whereabouts: (tid: string) => Whereabouts,
    private readonly log: Logger,
  ) {}

  /** False when the message cannot be kept (the coordinator's buffer for waiting tasks, or its job's share of it, is full). */
  route(tid: string, bytes: Uint8Array): boolean {
    const where = this.whereabouts(tid);
    if (where.kind === 'held-by') {
      // per-pair order: whatever waited goes first
      this.release(tid, where.send);
      where.send(bytes);
      this.relayed++;
      return true;
    }
    if (where.kind === 'gone') {
      this.dropped++;
      return true;
    }
    const job = jobOf(tid);
    const jobBytes = this.heldByJob.get(job) ?? 0;
    if (this.heldBytes + bytes.byteLength > HELD_BYTES_LIMIT || jobBytes + bytes.byteLength > HELD_BYTES_PER_JOB) {
      this.log.warn({ tid, bytes: bytes.byteLength, jobBytes }, 'relay buffer full: message refused');
      return false;
    }
    const queue = this.held.get(tid) ?? [];
    queue.push(bytes);
    this.held.set(tid, queue);
    this.#count(tid, bytes.byteLength);
    return true;
  }

  #count(tid: string, bytes: number): void {
    this.heldBytes += bytes;
    const job = jobOf(tid);
    const now = (this.heldByJob.get(job) ?? 0) + bytes;
    if (now > 0) this.heldByJob.set(job, now);
    else this.heldByJob.delete(job);
  }

  /** The task now runs on a host: hand it what waited for it. */
  release(tid: string, send: (bytes: Uint8Array) => void): void {
    const queue = this.held.get(tid);
    if (!queue) return;
    this.held.delete(tid);
    for (const bytes of queue) {
      this.#count(tid, -bytes.byteLength);
      send(bytes);
      this.relayed++;
    }
  }

  /** The task ended: nobody will read what waited for it. */
  forget(tid: string): void {
    const queue = this.held.get(tid);
    if (!queue) return;
    this.held.delete(tid);
    for (const bytes of queue) this.#count(tid, -bytes.byteLength);
    this.dropped += queue.length;
  }
}
