import { MAX_ENVELOPE_BYTES } from '@webpvm/vm-protocol';
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
 * cannot fill what every other job's relay needs; and one host's share of that, one such message,
 * so that one host of a job cannot fill what its other hosts need.
 */
const HELD_BYTES_PER_JOB = 2 * MAX_ENVELOPE_BYTES;
const HELD_BYTES_PER_HOST = MAX_ENVELOPE_BYTES;

const jobOf = (tid: string) => tid.slice(0, tid.indexOf('.'));

interface Held {
  bytes: Uint8Array;
  /** The host that sent it; null for the coordinator's own (exit notifications). */
  host: string | null;
}

/**
 * The relay path between tasks: envelopes that hosts send through the coordinator go to the host
 * that holds the receiving task. A message for a task that has not started yet is kept, in order,
 * and handed over right after the task's assignment; one for a task that has ended is dropped.
 */
export class RelayRouter {
  private readonly held = new Map<string, Held[]>();
  private heldBytes = 0;
  private readonly heldByJob = new Map<string, number>();
  private readonly heldByHost = new Map<string, number>();
  relayed = 0;
  dropped = 0;

  constructor(
    private readonly whereabouts: (tid: string) => Whereabouts,
    private readonly log: Logger,
  ) {}

  /**
   * A message for `tid` from host `sender`; false when it cannot be kept (the coordinator's buffer
   * for waiting tasks is full, or its job's share of it, or the sending host's share of that).
   */
  route(tid: string, bytes: Uint8Array, sender: string | null = null): boolean {
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
    const size = bytes.byteLength;
    const jobBytes = this.heldByJob.get(jobOf(tid)) ?? 0;
    const hostBytes = sender === null ? 0 : (this.heldByHost.get(sender) ?? 0);
    if (this.heldBytes + size > HELD_BYTES_LIMIT || jobBytes + size > HELD_BYTES_PER_JOB || hostBytes + size > HELD_BYTES_PER_HOST) {
      this.log.warn({ tid, bytes: size, jobBytes, host: sender, hostBytes }, 'relay buffer full: message refused');
      return false;
    }
    const queue = this.held.get(tid) ?? [];
    const entry = { bytes, host: sender };
    queue.push(entry);
    this.held.set(tid, queue);
    this.#count(tid, entry, 1);
    return true;
  }

  #count(tid: string, { bytes, host }: Held, sign: 1 | -1): void {
    const size = sign * bytes.byteLength;
    this.heldBytes += size;
    add(this.heldByJob, jobOf(tid), size);
    if (host !== null) add(this.heldByHost, host, size);
  }

  /** The task now runs on a host: hand it what waited for it. */
  release(tid: string, send: (bytes: Uint8Array) => void): void {
    const queue = this.held.get(tid);
    if (!queue) return;
    this.held.delete(tid);
    for (const entry of queue) {
      this.#count(tid, entry, -1);
      send(entry.bytes);
      this.relayed++;
    }
  }

  /** The task ended: nobody will read what waited for it. */
  forget(tid: string): void {
    const queue = this.held.get(tid);
    if (!queue) return;
    this.held.delete(tid);
    for (const entry of queue) this.#count(tid, entry, -1);
    this.dropped += queue.length;
  }
}

function add(totals: Map<string, number>, key: string, bytes: number): void {
  const now = (totals.get(key) ?? 0) + bytes;
  if (now > 0) totals.set(key, now);
  else totals.delete(key);
}
