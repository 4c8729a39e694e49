import { MAX_ENVELOPE_BYTES, decodeEnvelope, messageFromEnvelope, unsealMessage, type TaskMessage } from '@webpvm/vm-protocol/envelope';
import { LaneAssembly, type LaneChannel, isLanePiece } from '@webpvm/vm-protocol/lane';
import type { FromWorker } from '@webpvm/vm-protocol/worker';
import type { Mailbox } from './mailbox.ts';
import { ReportBatch } from './report-batch.ts';

type Report = Extract<FromWorker, { type: 'delivered' }>['entries'][number];
type Post = (message: FromWorker, transfer?: ArrayBuffer[]) => void;

/** Messages of one sender that came on a lane ahead of one still on its way through the host; more are dropped. */
const MAX_HELD = 100_000;

/**
 * Everything handed to one task, whichever way it came: `deliver`s from the host, and messages
 * on lanes straight from their senders' workers (vm-protocol lane.ts). Per sender, messages go
 * into the mailbox in seq order and once: one that comes on a lane ahead of one still on its way
 * through the host waits for it, one the task already has is dropped. The host learns from the
 * reports what was delivered and in which order, and keeps its replay log in that order; a lane's
 * message it knows by sender and seq only: the sender's log keeps its bytes, which would otherwise
 * cross to the host's process for each message (docs/sandbox.md, "What it costs").
 *
 * Reports wait up to 20 ms (ReportBatch), or go at once while the host waits for them (a message
 * it holds behind a gap, see `reportNow`), and all go before a checkpoint. A
 * task terminated without a safe point may have been handed lane messages its host never heard
 * of: their senders still hold them unacknowledged and send them again, and the task, restarted
 * from its checkpoint, gets them after what the host knew — in order per sender still.
 */
export class Arrivals {
  readonly #tid: string;
  readonly #mailbox: Mailbox;
  #delivered: Map<string, number>;
  #held = new Map<string, Map<number, { message: TaskMessage; bytes: Uint8Array }>>();
  #lanes = new Set<LaneChannel>();
  #reports: ReportBatch<Report>;

  constructor(tid: string, mailbox: Mailbox, post: Post, delivered: readonly (readonly [string, number])[] = []) {
    this.#tid = tid;
    this.#mailbox = mailbox;
    this.#delivered = new Map(delivered);
    this.#reports = new ReportBatch((entries) => post({ type: 'delivered', tid, entries }));
  }

  /** Per sender, the highest seq delivered to the task: what a checkpoint taken now has. */
  delivered(): [string, number][] {
    return [...this.#delivered].filter(([, seq]) => seq > 0);
  }

  /**
   * A `deliver` from the host: a sender's messages come in seq order. The host checked each
   * envelope all through; one that is not a message to this task is dropped.
   */
  fromHost(envelopes: readonly Uint8Array[]): void {
    for (const envelope of envelopes) {
      const message = unsealMessage(envelope);
      if (message?.to !== this.#tid) continue;
      if (message.seq <= (this.#delivered.get(message.from) ?? 0)) continue;
      this.#delivered.set(message.from, message.seq);
      this.#hand(message);
      this.#release(message.from);
    }
  }

  /**
   * The receiving end of a lane from `from`: what comes on it must be `from`'s messages to this
   * task, each an envelope or the pieces of one (vm-protocol lane.ts).
   */
  openLane(from: string, channel: LaneChannel): void {
    channel.binaryType = 'arraybuffer';
    this.#lanes.add(channel);
    const pieces = new LaneAssembly(MAX_ENVELOPE_BYTES);
    channel.addEventListener('message', ({ data }) => {
      if (!(data instanceof ArrayBuffer)) return;
      const frame = new Uint8Array(data);
      if (!isLanePiece(frame)) {
        pieces.interrupted();
        return this.#fromLane(from, frame);
      }
      const whole = pieces.add(frame);
      if (whole instanceof Uint8Array) this.#fromLane(from, whole);
    });
    channel.addEventListener('close', () => this.#lanes.delete(channel));
  }

  /** Reports everything delivered so far: before a checkpoint, whose `received` counts it. */
  flush(): void {
    this.#reports.flush();
  }

  /** The host holds a message behind a gap: what filled it may have come on a lane (ReportBatch.hurry). */
  reportNow(): void {
    this.#reports.hurry();
  }

  close(): void {
    for (const lane of this.#lanes) lane.close();
    this.#lanes.clear();
    this.#held.clear();
  }

  #fromLane(from: string, bytes: Uint8Array): void {
    const decoded = decodeEnvelope(bytes);
    if (!decoded.ok || decoded.value.header.type !== 'msg') return;
    const { header, buffers } = decoded.value;
    if (header.from !== from || header.to !== this.#tid || header.seq < 1) return;
    const done = this.#delivered.get(from) ?? 0;
    if (header.seq <= done) return;
    let message: TaskMessage;
    try {
      message = messageFromEnvelope(header, buffers);
    } catch {
      return;
    }
    if (header.seq > done + 1) {
      let held = this.#held.get(from);
      if (!held) {
        held = new Map();
        this.#held.set(from, held);
      }
      if (held.size < MAX_HELD) held.set(header.seq, { message, bytes });
      return;
    }
    this.#delivered.set(from, header.seq);
    this.#hand(message, bytes);
    this.#release(from);
  }

  #release(from: string): void {
    const held = this.#held.get(from);
    if (!held) return;
    for (let next = (this.#delivered.get(from) ?? 0) + 1, h = held.get(next); h; next++, h = held.get(next)) {
      held.delete(next);
      this.#delivered.set(from, next);
      this.#hand(h.message, h.bytes);
    }
    if (held.size === 0) this.#held.delete(from);
  }

  /** A lane's message keeps its envelope while unread (a checkpoint hands it over); its report names it only. */
  #hand(message: TaskMessage, envelope?: Uint8Array): void {
    this.#mailbox.deliver([envelope ? { ...message, envelope } : message]);
    this.#reports.add({ n: this.#mailbox.received, from: message.from, seq: message.seq, ...(envelope ? { lane: true as const } : {}) });
  }
}
