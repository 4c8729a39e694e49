import { type SealedMessage, parseTid } from '@webpvm/vm-protocol';

/**
 * What this page keeps of its ended tasks' sender logs, in all. Past it the logs of the tasks that
 * ended first go: their receivers, restarted from an older checkpoint, could no longer be given
 * what those tasks sent them.
 */
export const ENDED_LOG_BYTES = 64 * 1024 * 1024;

const pairKey = (from: string, to: string) => `${from}>${to}`;

/**
 * The sender logs of tasks that ended on this page (worker `ended-log`): a task's worker, and the
 * log in it, is gone once it ends, yet its last messages may still be needed — lost with a
 * connection that broke while they were on their way, or asked for again by a receiver restarted
 * from a checkpoint older than them. They lose what receivers' checkpoints cover (`covered`), and
 * go when their job ends.
 */
export class EndedLogs {
  /** Per ended task, in the order they ended: its messages, per receiver in seq order. */
  readonly #logs = new Map<string, SealedMessage[]>();
  /** Per pair of an ended task here, the highest seq its receiver's host acknowledged. */
  readonly #acked = new Map<string, number>();
  #bytes = 0;

  get bytes(): number {
    return this.#bytes;
  }

  /** Part of what `tid`'s log held as it ended, in the log's order. */
  keep(tid: string, messages: readonly SealedMessage[]): void {
    const log = this.#logs.get(tid) ?? [];
    this.#logs.set(tid, log);
    for (const message of messages) {
      log.push(message);
      this.#bytes += message.envelope.byteLength;
    }
    for (const oldest of this.#logs.keys()) {
      if (this.#bytes <= ENDED_LOG_BYTES) break;
      this.#drop(oldest);
    }
  }

  /** The checkpoint of `to` kept off its tab has what ended task `tid` sent it up to `seq`. */
  covered(tid: string, to: string, seq: number): void {
    const log = this.#logs.get(tid);
    if (!log) return;
    const left = log.filter((m) => m.to !== to || m.seq > seq);
    if (!left.length) return this.#drop(tid);
    this.#bytes -= sizeOf(log) - sizeOf(left);
    this.#logs.set(tid, left);
  }

  /** The host of `to` acknowledged what ended task `tid` sent it up to `seq`: it was handed to `to`. */
  acked(tid: string, to: string, seq: number): void {
    if (!this.#logs.has(tid)) return;
    const key = pairKey(tid, to);
    this.#acked.set(key, Math.max(seq, this.#acked.get(key) ?? 0));
  }

  /**
   * What the logs hold for every receiver, or for `to` only: all of it for receivers restarted
   * from their checkpoints, or only what their hosts did not acknowledge (`unacknowledged`).
   */
  messages({ to, unacknowledged }: { to?: ReadonlySet<string>; unacknowledged: boolean }): SealedMessage[] {
    const messages: SealedMessage[] = [];
    for (const log of this.#logs.values()) {
      for (const m of log) {
        if (to && !to.has(m.to)) continue;
        if (unacknowledged && m.seq <= (this.#acked.get(pairKey(m.from, m.to)) ?? 0)) continue;
        messages.push(m);
      }
    }
    return messages;
  }

  /** What the logs of the tasks of `after` hold for `to` past the seq given for each, in seq order. */
  sentTo(to: string, after: ReadonlyMap<string, number>): SealedMessage[] {
    const messages: SealedMessage[] = [];
    for (const [tid, seq] of after) for (const m of this.#logs.get(tid) ?? []) if (m.to === to && m.seq > seq) messages.push(m);
    return messages;
  }

  /** The ended tasks whose logs are kept here. */
  tids(): string[] {
    return [...this.#logs.keys()];
  }

  forget(jobs: ReadonlySet<string>): void {
    for (const tid of this.#logs.keys()) if (jobs.has(parseTid(tid).jobId)) this.#drop(tid);
  }

  #drop(tid: string): void {
    this.#bytes -= sizeOf(this.#logs.get(tid) ?? []);
    this.#logs.delete(tid);
    for (const key of this.#acked.keys()) if (key.startsWith(`${tid}>`)) this.#acked.delete(key);
  }
}

function sizeOf(messages: readonly SealedMessage[]): number {
  let bytes = 0;
  for (const message of messages) bytes += message.envelope.byteLength;
  return bytes;
}
