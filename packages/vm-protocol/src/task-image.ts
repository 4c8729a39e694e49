import { z } from 'zod';
import { Tid } from './ids.ts';
import { LIMITS } from './limits.ts';
import { type SealedMessage, readSealed } from './envelope.ts';
import { encodeFrame, readFrameHeader, readSegments } from './framing.ts';
import type { EncodedValue } from './value-codec.ts';

/**
 * A migrating task as it travels from one host to the next (MPVM's transfer): its checkpoint,
 * what it has received and not yet read, and what its new host must know to keep delivery
 * exactly once and in order. Framed like an envelope (framing.ts): the byte segments are the
 * state's typed arrays, then one encoded envelope per message, so a 64 MiB Float64Array state
 * moves as bytes, never as text.
 */

const Seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const Uint32 = z.number().int().min(0).max(0xffffffff);
const Sizes = z.array(z.number().int().nonnegative()).max(1_000_000);

/** The per-pair counters a task resumes with: seqs of its sends and the number of its requests. */
export const Counters = z.object({
  sent: z.array(z.object({ to: Tid, seq: Seq })).max(LIMITS.tasksPerJob),
  requests: z.number().int().nonnegative(),
});
export type Counters = z.infer<typeof Counters>;

const ImageHeader = z.object({
  tid: Tid,
  checkpoint: z
    .object({ state: z.unknown(), stateSizes: Sizes, rng: z.tuple([Uint32, Uint32, Uint32, Uint32]) })
    .extend(Counters.shape)
    .nullable(),
  /** Per sender, the highest seq the task has in order: anything at or below it was received already. */
  delivered: z.array(z.object({ from: Tid, seq: Seq })).max(LIMITS.tasksPerJob),
  /**
   * Messages to find in the mailbox on resume, in the order they were delivered: each the size of
   * its envelope, or the sender and seq of one the task read on a lane, whose bytes its sender
   * still holds (it sends it again: `refill`).
   */
  mailbox: z.array(z.union([z.number().int().nonnegative(), z.object({ from: Tid, seq: Seq.min(1) })])).max(1_000_000),
  /** Messages received out of order: they go through the new host's reorder buffer. */
  pending: Sizes,
  /** The task's sender log (worker.ts `WorkerCheckpoint.log`): messages it sent, kept for receivers that may crash. */
  log: Sizes.default([]),
});

/** A checkpoint as hosts and workers pass it on: the state stays value-encoded (value-codec.ts) end to end. */
export interface ImageCheckpoint extends Counters {
  state: EncodedValue;
  rng: [number, number, number, number];
}

/** A message of a mailbox named by its sender and seq: the task read it on a lane, and its sender keeps the bytes. */
export interface MessageRef {
  from: string;
  seq: number;
}

export type MailboxEntry = SealedMessage | MessageRef;

export const isSealed = (entry: MailboxEntry): entry is SealedMessage => 'envelope' in entry;

export interface TaskImage {
  tid: string;
  /** Null when the task never reached a checkpoint: it starts over and replays its mailbox. */
  checkpoint: ImageCheckpoint | null;
  delivered: Map<string, number>;
  mailbox: MailboxEntry[];
  pending: SealedMessage[];
  /** Envelopes of messages the task sent that its receivers' checkpoints do not cover yet, in the order sent. */
  log: Uint8Array[];
}

export function encodeImage(image: TaskImage): Uint8Array {
  const state = image.checkpoint?.state ?? { json: null, buffers: [] };
  const mailbox = image.mailbox.filter(isSealed).map((m) => m.envelope);
  const pending = image.pending.map((m) => m.envelope);
  const header: z.input<typeof ImageHeader> = {
    tid: image.tid,
    checkpoint: image.checkpoint && {
      state: state.json,
      stateSizes: state.buffers.map((b) => b.byteLength),
      rng: image.checkpoint.rng,
      sent: image.checkpoint.sent,
      requests: image.checkpoint.requests,
    },
    delivered: [...image.delivered].map(([from, seq]) => ({ from, seq })),
    mailbox: image.mailbox.map((m) => (isSealed(m) ? m.envelope.byteLength : { from: m.from, seq: m.seq })),
    pending: pending.map((b) => b.byteLength),
    log: image.log.map((b) => b.byteLength),
  };
  return encodeFrame(header, [...state.buffers, ...mailbox, ...pending, ...image.log]);
}

export type DecodedImage = { ok: true; value: TaskImage } | { ok: false; error: { code: 'E_BAD_FRAME'; message: string } };

export function decodeImage(bytes: Uint8Array): DecodedImage {
  const bad = (message: string): DecodedImage => ({ ok: false, error: { code: 'E_BAD_FRAME', message: `task image: ${message}` } });
  const head = readFrameHeader(bytes);
  if (!head.ok) return bad(head.message);
  const parsed = ImageHeader.safeParse(head.raw);
  if (!parsed.success) return bad(`${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  const header = parsed.data;
  const stateSizes = header.checkpoint?.stateSizes ?? [];
  const mailboxSizes = header.mailbox.filter((m) => typeof m === 'number');
  const read = readSegments(bytes, head.offset, [...stateSizes, ...mailboxSizes, ...header.pending, ...header.log]);
  if (!read) return bad('byte segments run past its end');
  if (read.next !== bytes.byteLength) return bad('trailing bytes');
  const stateBuffers = read.segments.slice(0, stateSizes.length);
  const mailboxBytes = read.segments.slice(stateSizes.length, stateSizes.length + mailboxSizes.length);
  const logAt = stateSizes.length + mailboxSizes.length + header.pending.length;
  const pendingBytes = read.segments.slice(stateSizes.length + mailboxSizes.length, logAt);
  const log: Uint8Array[] = [];
  for (const envelope of read.segments.slice(logAt)) {
    const sent = readSealed(envelope);
    if (!sent.ok) return bad(sent.message);
    if (sent.message.from !== header.tid || sent.message.seq < 1) return bad('a message of its sender log is not one it sent');
    log.push(envelope.slice());
  }
  const messages = (list: Uint8Array[]): SealedMessage[] | string => {
    const out: SealedMessage[] = [];
    for (const envelope of list) {
      const read = readSealed(envelope);
      if (!read.ok) return read.message;
      if (read.message.to !== header.tid) return 'a message in it is not for its task';
      // A host keeps these in its replay log long after the image: a view would hold all of it, state included.
      out.push({ ...read.message, envelope: envelope.slice() });
    }
    return out;
  };
  const sealed = messages(mailboxBytes);
  const pending = messages(pendingBytes);
  if (typeof sealed === 'string') return bad(sealed);
  if (typeof pending === 'string') return bad(pending);
  let next = 0;
  const mailbox = header.mailbox.map((m): MailboxEntry => (typeof m === 'number' ? sealed[next++]! : m));
  const c = header.checkpoint;
  return {
    ok: true,
    value: {
      tid: header.tid,
      checkpoint: c && { state: { json: c.state, buffers: stateBuffers }, rng: c.rng, sent: c.sent, requests: c.requests },
      delivered: new Map(header.delivered.map((d) => [d.from, d.seq])),
      mailbox,
      pending,
      log,
    },
  };
}

const keyOf = (tid: string, attempt: number, image = 0) => `${tid}#${attempt}#${image}`;

/** How long an image is kept with no new part, or unclaimed once whole: its sender or its task is gone by then. */
const ASSEMBLY_TTL_MS = 60_000;

/**
 * Puts images back together from their `part` frames (envelope.ts `imageParts`), one per
 * (tid, attempt, image), holding at most `maxBytes` of unfinished images at a time.
 */
export class ImageAssembly {
  #partial = new Map<string, { parts: (Uint8Array | undefined)[]; received: number; bytes: number; last: number }>();
  #complete = new Map<string, { image: Uint8Array; at: number }>();
  #bytes = 0;
  readonly #maxBytes: number;
  readonly #now: () => number;

  constructor(maxBytes: number, now: () => number = Date.now) {
    this.#maxBytes = maxBytes;
    this.#now = now;
  }

  /** Adds a piece; an error when it does not fit with the others or over the limit. */
  add(header: { tid: string; attempt: number; index: number; count: number; image?: number }, piece: Uint8Array): { code: 'E_BAD_FRAME' | 'E_TOO_LARGE'; message: string } | null {
    const key = keyOf(header.tid, header.attempt, header.image);
    this.#expire();
    let entry = this.#partial.get(key);
    if (!entry) {
      entry = { parts: new Array<Uint8Array | undefined>(header.count), received: 0, bytes: 0, last: this.#now() };
      this.#partial.set(key, entry);
    }
    if (entry.parts.length !== header.count || header.index >= header.count) {
      return { code: 'E_BAD_FRAME', message: `image part ${header.index} of ${header.count} does not fit the image of ${header.tid}` };
    }
    if (entry.parts[header.index]) return null;
    if (this.#bytes + piece.byteLength > this.#maxBytes) {
      this.#drop(key);
      return { code: 'E_TOO_LARGE', message: `images being received are over ${this.#maxBytes} bytes` };
    }
    // The piece may be a view into a larger frame: keep a copy of its own.
    entry.parts[header.index] = piece.slice();
    entry.received += 1;
    entry.bytes += piece.byteLength;
    entry.last = this.#now();
    this.#bytes += piece.byteLength;
    if (entry.received === header.count) {
      const whole = new Uint8Array(entry.bytes);
      let offset = 0;
      for (const part of entry.parts) {
        whole.set(part!, offset);
        offset += part!.byteLength;
      }
      this.#drop(key);
      this.#complete.set(key, { image: whole, at: this.#now() });
    }
    return null;
  }

  /** The whole image of this attempt, handed over once (and forgotten here), or null. */
  take(tid: string, attempt: number, id = 0): Uint8Array | null {
    const key = keyOf(tid, attempt, id);
    const image = this.#complete.get(key)?.image ?? null;
    this.#complete.delete(key);
    return image;
  }

  /** Forgets every image of `tid`, whole or not. */
  forget(tid: string): void {
    for (const key of [...this.#partial.keys()]) if (key.startsWith(`${tid}#`)) this.#drop(key);
    for (const key of [...this.#complete.keys()]) if (key.startsWith(`${tid}#`)) this.#complete.delete(key);
  }

  #drop(key: string): void {
    const entry = this.#partial.get(key);
    if (!entry) return;
    this.#bytes -= entry.bytes;
    this.#partial.delete(key);
  }

  #expire(): void {
    const now = this.#now();
    for (const [key, entry] of this.#partial) if (now - entry.last > ASSEMBLY_TTL_MS) this.#drop(key);
    for (const [key, entry] of this.#complete) if (now - entry.at > ASSEMBLY_TTL_MS) this.#complete.delete(key);
  }
}
