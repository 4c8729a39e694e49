import { type MailboxEntry, type MessageRef, type SealedMessage, isSealed, readSealed } from '@webpvm/vm-protocol';
import { ReorderBuffer } from './reorder-buffer.ts';

/** A message as this page holds it and hands it to the worker (worker.ts `deliver`): sealed, its data never decoded here. */
export type DeliveredMessage = SealedMessage;

export interface InboxOptions {
  /** Whether this page holds the task, running or queued. */
  holds(tid: string): boolean;
  /** Hands messages to the task's worker; false while the task has not started. */
  post(tid: string, messages: DeliveredMessage[]): boolean;
  /** `count` messages reached the task's worker. */
  delivered(tid: string, count: number): void;
  /**
   * A message for the task waits behind a gap, which a lane may have filled already: its worker
   * is asked to report now rather than in its next batch. Asked again only after a report.
   */
  held?(tid: string): void;
  /** The messages a restored image named by sender and seq all came again (`restore`): the task can start. */
  filled?(tid: string): void;
  /** Keep what each worker was handed for a replay (see Box.log); true unless measuring without it. */
  keepLog?: boolean;
}

interface Box {
  buffer: ReorderBuffer;
  ready: DeliveredMessage[];
  /** Per sender, the highest seq handed to the worker or reported from a lane: what acknowledgements report. */
  posted: Map<string, number>;
  /** Handed to the worker and not reported back yet (see `reported`), in the order handed. */
  awaiting: DeliveredMessage[];
  /** The worker was asked for its reports (InboxOptions.held) and has not reported since. */
  reportAsked: boolean;
  /**
   * What the worker reported it delivered and its last checkpoint does not cover (read after it,
   * or not read yet), numbered as the worker numbered it: a task restarted from that checkpoint
   * gets these again, in the same order. A message that came on a lane is named by sender and
   * seq (its sender's log keeps it) until a checkpoint finds it unread and hands its bytes over.
   */
  log: { n: number; message: MailboxEntry }[];
  /** Of a box restored from an image, the log's messages named only, by `from#seq`: they come again from their senders. */
  missing: Map<string, number>;
}

const refKey = (m: MessageRef): string => `${m.from}#${m.seq}`;

/** One delivery as the worker reports it (worker.ts `delivered`); `lane` for one that came on a lane. */
export interface DeliveryReport {
  n: number;
  from: string;
  seq: number;
  lane?: true;
}

/** What a migrating task takes along from its inbox (see TaskImage in vm-protocol). */
export interface InboxImage {
  delivered: Map<string, number>;
  mailbox: MailboxEntry[];
  pending: DeliveredMessage[];
}

/**
 * The receive path of every task this page holds, whatever way its messages came (same page,
 * data channel, relay): one reorder buffer per task, and one `deliver` per task per turn.
 * Messages for a task that has not started yet wait for its worker. Messages on lanes go to the
 * worker without this page; the worker reports every delivery, and the replay log follows it.
 */
export class Inboxes {
  #options: InboxOptions;
  #boxes = new Map<string, Box>();
  #dirty = new Set<string>();
  #flushQueued = false;

  #keepLog: boolean;

  constructor(options: InboxOptions) {
    this.#options = options;
    this.#keepLog = options.keepLog ?? true;
  }

  holds(tid: string): boolean {
    return this.#options.holds(tid);
  }

  /** False when this page does not hold `message.to`: the caller sends it on. */
  accept(message: SealedMessage): boolean {
    if (!this.#options.holds(message.to)) return false;
    const box = this.#box(message.to);
    if (box.missing.size && this.#fill(box, message)) return true;
    const ready = box.buffer.accept(message);
    if (ready.length === 0) {
      if (!box.reportAsked && box.buffer.isWaiting(message)) {
        box.reportAsked = true;
        this.#options.held?.(message.to);
      }
      return true;
    }
    for (const m of ready) box.ready.push(m);
    this.#markDirty(message.to);
    return true;
  }

  /** Messages came for the task here: it cannot leave unstarted without them. */
  hasMail(tid: string): boolean {
    return this.#boxes.has(tid);
  }

  /** The task's worker started: what waited for it goes now. */
  started(tid: string): void {
    if (this.#boxes.get(tid)?.ready.length) this.#markDirty(tid);
  }

  /** The task ended or left this page: what it did not read goes with it. */
  close(tid: string): void {
    this.#boxes.delete(tid);
    this.#dirty.delete(tid);
  }

  /**
   * The task's worker took a checkpoint after `received` deliveries, with `unread` of them not
   * read yet: the log keeps only what a restart from that checkpoint must see again. `unreadLane`
   * has the envelopes of the unread ones that came on lanes: kept whole from now, as the senders'
   * logs forget them once a checkpoint kept off this tab covers them.
   */
  checkpointed(tid: string, received: number, unread: readonly number[], unreadLane: readonly { n: number; envelope: Uint8Array }[] = []): void {
    const box = this.#boxes.get(tid);
    if (!box) return;
    const keep = new Set(unread);
    box.log = box.log.filter(({ n }) => n > received || keep.has(n));
    if (!unreadLane.length) return;
    const at = new Map(box.log.map((entry, i) => [entry.n, i]));
    for (const { n, envelope } of unreadLane) {
      const i = at.get(n);
      const named = i === undefined ? undefined : box.log[i]!.message;
      if (!named || isSealed(named)) continue;
      // The worker's word: only a message of that sender and seq to this task takes the place.
      const read = readSealed(envelope);
      if (read.ok && read.message.to === tid && read.message.from === named.from && read.message.seq === named.seq) {
        box.log[i!] = { n, message: { ...read.message, envelope: envelope.slice() } };
      }
    }
  }

  /**
   * What the task had not read at its checkpoint after `received` deliveries (called right after
   * `checkpointed`), in delivery order: a crash restart from that checkpoint finds these in its mailbox.
   */
  unread(tid: string, received: number): MailboxEntry[] {
    return (this.#boxes.get(tid)?.log ?? []).filter(({ n }) => n <= received).map(({ message }) => message);
  }

  /**
   * The worker delivered these, in this order. A message handed over by this page is found
   * among those awaiting a report; one from a lane is new here, and may release what waited for
   * it. Returns the lane's messages: their senders wait for an acknowledgement.
   */
  reported(tid: string, entries: readonly DeliveryReport[]): Pick<SealedMessage, 'from' | 'to' | 'seq'>[] {
    // A lane may bring a task its first messages, before this page handed it any.
    const box = this.#boxes.get(tid) ?? (this.#options.holds(tid) ? this.#box(tid) : undefined);
    if (!box) return [];
    box.reportAsked = false;
    const fromLanes: Pick<SealedMessage, 'from' | 'to' | 'seq'>[] = [];
    for (const { n, from, seq, lane } of entries) {
      let message: MailboxEntry;
      let olderMayAwait = true;
      if (lane) {
        fromLanes.push({ from, to: tid, seq });
        message = { from, seq };
        if (seq > (box.posted.get(from) ?? 0)) box.posted.set(from, seq);
        for (const m of box.buffer.advance(from, seq)) box.ready.push(m);
      } else {
        const at = box.awaiting.findIndex((m) => m.from === from && m.seq === seq);
        if (at < 0) continue;
        // Awaiting holds a sender's messages in seq order: when this is its first, none older waits (the usual case, kept linear).
        olderMayAwait &&= box.awaiting.findIndex((m) => m.from === from) < at;
        message = box.awaiting.splice(at, 1)[0]!;
      }
      // The worker delivers a sender's messages in seq order: one of them still awaiting a report here it had already.
      if (olderMayAwait) box.awaiting = box.awaiting.filter((m) => m.from !== from || m.seq > seq);
      if (this.#keepLog) box.log.push({ n, message });
    }
    if (box.ready.length) this.#markDirty(tid);
    return fromLanes;
  }

  /**
   * The task leaves this page: what it must find again elsewhere, relative to its last
   * checkpoint — the log, then what was handed over and not reported, then what was ready and
   * not handed over, then what waits for a gap.
   */
  cut(tid: string): InboxImage {
    const box = this.#boxes.get(tid);
    this.close(tid);
    if (!box) return { delivered: new Map(), mailbox: [], pending: [] };
    return {
      delivered: box.buffer.delivered(),
      mailbox: [...box.log.map((entry) => entry.message), ...box.awaiting, ...box.ready],
      pending: box.buffer.waiting(),
    };
  }

  /**
   * A migrated task arrives: its inbox goes on from the image; the mailbox is handed over with
   * its start. What reached this page for it while its image was on the way goes through the
   * restored buffer too, which drops what the image already holds.
   */
  restore(tid: string, image: InboxImage): void {
    const early = this.#boxes.get(tid);
    const mailbox = image.mailbox;
    const box: Box = {
      buffer: new ReorderBuffer(image.delivered),
      ready: [],
      posted: new Map(image.delivered),
      awaiting: [],
      reportAsked: false,
      log: mailbox.map((message, i) => ({ n: i + 1, message })),
      missing: new Map(),
    };
    for (const [i, { message }] of box.log.entries()) if (!isSealed(message)) box.missing.set(refKey(message), i);
    this.#boxes.set(tid, box);
    const before = early ? [...early.ready, ...early.buffer.waiting()] : [];
    for (const message of [...image.pending, ...before]) this.accept(message);
  }

  /**
   * The mailbox a task restored from an image starts with: every message its image named, whole;
   * null while some have not come again (`filled` tells when they have).
   */
  mailbox(tid: string): SealedMessage[] | null {
    const box = this.#boxes.get(tid);
    if (!box || box.missing.size) return null;
    return box.log.map(({ message }) => message as SealedMessage);
  }

  postedFrom(to: string, from: string): number {
    return this.#boxes.get(to)?.posted.get(from) ?? 0;
  }

  #box(tid: string): Box {
    let box = this.#boxes.get(tid);
    if (!box) {
      box = { buffer: new ReorderBuffer(), ready: [], posted: new Map(), awaiting: [], reportAsked: false, log: [], missing: new Map() };
      this.#boxes.set(tid, box);
    }
    return box;
  }

  /** A message the box's restored log names came again: it takes its place there. */
  #fill(box: Box, message: SealedMessage): boolean {
    const key = refKey(message);
    const i = box.missing.get(key);
    if (i === undefined) return false;
    box.missing.delete(key);
    box.log[i] = { n: box.log[i]!.n, message };
    if (!box.missing.size) queueMicrotask(() => this.#options.filled?.(message.to));
    return true;
  }

  #markDirty(tid: string): void {
    this.#dirty.add(tid);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    this.#flushQueued = false;
    const dirty = [...this.#dirty];
    this.#dirty.clear();
    for (const tid of dirty) {
      const box = this.#boxes.get(tid);
      if (!box?.ready.length) continue;
      const handed = box.ready;
      box.ready = [];
      // Awaiting before the post: a worker may report back before `post` returns.
      if (this.#keepLog) box.awaiting.push(...handed);
      if (!this.#options.post(tid, handed)) {
        if (this.#keepLog) box.awaiting.splice(box.awaiting.length - handed.length, handed.length);
        box.ready = [...handed, ...box.ready];
        continue;
      }
      for (const m of handed) if (m.seq > (box.posted.get(m.from) ?? 0)) box.posted.set(m.from, m.seq);
      this.#options.delivered(tid, handed.length);
    }
  }
}
