import { z } from 'zod';
import { JobId, Tid } from './ids.ts';
import { messagePair } from './message-frame.ts';

/**
 * A lane: one RTCDataChannel per (sender task, receiver task) pair that takes both pages out of
 * the message path. It rides on a link: an RTCPeerConnection between the two pages' sandbox
 * frames of the pair's job (sandbox.ts), which the pages signal over the data channel they already
 * share. The pages negotiate each lane there too (LaneControl frames); each page's frame creates
 * it with the same SCTP stream id and hands its end straight to its task's worker. The sender's
 * worker writes each message on it as one envelope (envelope.ts), one larger than
 * LANE_MESSAGE_BYTES as consecutive pieces (`lanePieces`); the receiver's worker reads it and
 * reports what it delivered. Neither page's process is in the path.
 */

/**
 * A relay lane: the lane of a pair whose hosts share no data channel, through the coordinator.
 * The sender's host asks for it (`lane-open`); the coordinator gives each host one end (`lane`),
 * a one-time token with which that task's worker opens a WebSocket at RELAY_LANE_PATH, and pipes
 * what the sender's worker writes, each frame one envelope of that pair or a piece of one
 * (`LanePieceCheck`), to the receiver's.
 * Either socket closing closes the other: the lane is gone, as when a data channel closes.
 */
export const RELAY_LANE_PATH = '/lane';

/** Lane tokens are this long (hex): unguessable, and the only thing a lane socket presents. */
export const LANE_TOKEN_CHARS = 32;

/** Stream ids lanes use; the page that opened the shared channel takes the even ones, the other page the odd ones. */
export const LANE_IDS = { first: 2, last: 1023 } as const;

/** The largest frame a lane carries (Chromium takes data-channel messages up to 256 KiB): a larger envelope goes in pieces. */
export const LANE_MESSAGE_BYTES = 128 * 1024;

/**
 * A lane frame that carries a piece of an envelope over LANE_MESSAGE_BYTES:
 * u32 LANE_PIECE_MARK · u32 the envelope's size · the piece, all little-endian. A message frame
 * starts with 0xffffffff and a JSON-headed one with its header's length, never this.
 */
const LANE_PIECE_MARK = 0xfffffffe;
const PIECE_HEAD_BYTES = 8;
const PIECE_BYTES = LANE_MESSAGE_BYTES - PIECE_HEAD_BYTES;

/** An envelope larger than a lane's frame, as the frames that carry it in order. */
export function lanePieces(envelope: Uint8Array): Uint8Array<ArrayBuffer>[] {
  const pieces: Uint8Array<ArrayBuffer>[] = [];
  for (let at = 0; at < envelope.byteLength; at += PIECE_BYTES) {
    const piece = envelope.subarray(at, Math.min(at + PIECE_BYTES, envelope.byteLength));
    const frame = new Uint8Array(PIECE_HEAD_BYTES + piece.byteLength);
    const view = new DataView(frame.buffer);
    view.setUint32(0, LANE_PIECE_MARK, true);
    view.setUint32(4, envelope.byteLength, true);
    frame.set(piece, PIECE_HEAD_BYTES);
    pieces.push(frame);
  }
  return pieces;
}

export function isLanePiece(frame: Uint8Array): boolean {
  return frame.byteLength >= PIECE_HEAD_BYTES && new DataView(frame.buffer, frame.byteOffset, 4).getUint32(0, true) === LANE_PIECE_MARK;
}

/**
 * Where the envelope whose pieces a lane carries stands: each envelope's first piece names a size
 * over LANE_MESSAGE_BYTES and up to `maxBytes` (and, given a `pair`, starts a message of that
 * pair), the others follow it to its size and no further. A piece refused ends the envelope.
 */
export class LanePieceCheck {
  #size = 0;
  #have = 0;

  constructor(
    private readonly pair: { from: string; to: string } | null,
    private readonly maxBytes: number,
  ) {}

  /** Whether a whole frame may come now: no envelope is under way. */
  get between(): boolean {
    return this.#have === 0;
  }

  /** Whether this piece may go on. */
  piece(frame: Uint8Array): boolean {
    const size = new DataView(frame.buffer, frame.byteOffset, PIECE_HEAD_BYTES).getUint32(4, true);
    const piece = frame.subarray(PIECE_HEAD_BYTES);
    const first = this.#have === 0;
    const pair = first && this.pair ? messagePair(piece) : null;
    const fits = first
      ? size > LANE_MESSAGE_BYTES && size <= this.maxBytes && (!this.pair || (pair?.from === this.pair.from && pair.to === this.pair.to))
      : size === this.#size;
    if (!fits || !piece.byteLength || this.#have + piece.byteLength > size) {
      this.reset();
      return false;
    }
    this.#size = size;
    this.#have += piece.byteLength;
    if (this.#have === size) this.#have = 0;
    return true;
  }

  /** The envelope under way, if any, is given up. */
  reset(): void {
    this.#have = 0;
  }
}

/**
 * One lane's envelopes put back together from their pieces, which a lane delivers in order. A
 * piece that does not go on the envelope under way (LanePieceCheck) ends it: what came of it is
 * dropped, and its sender sends the message again through its host when the lane closes.
 */
export class LaneAssembly {
  readonly #check: LanePieceCheck;
  #parts: Uint8Array[] = [];

  constructor(maxBytes: number) {
    this.#check = new LanePieceCheck(null, maxBytes);
  }

  /** The whole envelope once its last piece came, null while more are to come, or 'bad'. */
  add(frame: Uint8Array): Uint8Array | null | 'bad' {
    if (!this.#check.piece(frame)) {
      this.#parts = [];
      return 'bad';
    }
    this.#parts.push(frame.subarray(PIECE_HEAD_BYTES));
    if (!this.#check.between) return null;
    const whole = new Uint8Array(this.#parts.reduce((n, part) => n + part.byteLength, 0));
    let at = 0;
    for (const part of this.#parts) {
      whole.set(part, at);
      at += part.byteLength;
    }
    this.#parts = [];
    return whole;
  }

  /** A frame that is not a piece came while an envelope was under way: that envelope is dropped. */
  interrupted(): void {
    this.#parts = [];
    this.#check.reset();
  }
}

export const LaneId = z.number().int().min(LANE_IDS.first).max(LANE_IDS.last);

/** What two frames exchange to make their link: a session description, or one ICE candidate. */
export const LinkSignal = z.union([
  z.object({ description: z.object({ type: z.enum(['offer', 'answer']), sdp: z.string().max(16 * 1024) }) }),
  z.object({
    candidate: z.object({
      candidate: z.string().max(1024),
      sdpMid: z.string().max(64).nullable(),
      sdpMLineIndex: z.number().int().min(0).max(64).nullable(),
      usernameFragment: z.string().max(256).nullable(),
    }),
  }),
]);
export type LinkSignal = z.infer<typeof LinkSignal>;

/** ICE candidates one side of a link takes; a peer that sends more loses the link. */
export const MAX_LINK_CANDIDATES = 64;

export const LaneControl = z.discriminatedUnion('op', [
  /** The sender's page asks for a lane from `from` to `to` on stream `id`. */
  z.object({ op: z.literal('open'), id: LaneId, from: Tid, to: Tid }),
  /** The receiver's page created its end: the sender's page creates its own and hands it to the task. */
  z.object({ op: z.literal('ready'), id: LaneId }),
  /** No lane: `to` does not run there, or that page holds as many lanes as it takes. */
  z.object({ op: z.literal('refused'), id: LaneId }),
  /**
   * The receiving task left that page or ended: its end is gone. The sender stops writing on the
   * lane, and what it wrote there unacknowledged goes another way (a closing end need not tell
   * the other one).
   */
  z.object({ op: z.literal('gone'), id: LaneId }),
  /**
   * The link of `job` between the two pages' frames: the page that accepted the shared channel
   * asks for it (`link`); the page that opened the channel offers (`signal`), and both trickle
   * their candidates. `unlink`: that side's link is gone (its frame went, or it failed); lanes on
   * it are closed, and the next lane of the job asks for a new one.
   */
  z.object({ op: z.literal('link'), job: JobId }),
  z.object({ op: z.literal('signal'), job: JobId, signal: LinkSignal }),
  z.object({ op: z.literal('unlink'), job: JobId }),
]);
export type LaneControl = z.infer<typeof LaneControl>;

/** What pages and workers use of the RTCDataChannel of a lane (the type is not in every worker's lib). */
export interface LaneChannel {
  readonly readyState: string;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  binaryType: string;
  send(data: Uint8Array<ArrayBuffer>): void;
  close(): void;
  addEventListener(type: 'message' | 'close' | 'bufferedamountlow', listener: (event: { data?: unknown }) => void): void;
}

export const LaneChannelSchema = z.custom<LaneChannel>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { send?: unknown }).send === 'function' && typeof (v as { close?: unknown }).close === 'function',
  'a data channel',
);
