import { z } from 'zod';
import { JobId, Tid } from './ids.ts';

/**
 * A lane: one RTCDataChannel per (sender task, receiver task) pair that takes both pages out of
 * the message path. It rides on a link: an RTCPeerConnection between the two pages' sandbox
 * frames of the pair's job (sandbox.ts), which the pages signal over the data channel they already
 * share. The pages negotiate each lane there too (LaneControl frames); each page's frame creates
 * it with the same SCTP stream id and hands its end straight to its task's worker. The sender's
 * worker writes each message on it as one envelope (envelope.ts, never chunked); the receiver's
 * worker reads it and reports what it delivered. Neither page's process is in the path.
 */

/**
 * A relay lane: the lane of a pair whose hosts share no data channel, through the coordinator.
 * The sender's host asks for it (`lane-open`); the coordinator gives each host one end (`lane`),
 * a one-time token with which that task's worker opens a WebSocket at RELAY_LANE_PATH, and pipes
 * what the sender's worker writes, each frame one envelope of that pair, to the receiver's.
 * Either socket closing closes the other: the lane is gone, as when a data channel closes.
 */
export const RELAY_LANE_PATH = '/lane';

/** Lane tokens are this long (hex): unguessable, and the only thing a lane socket presents. */
export const LANE_TOKEN_CHARS = 32;

/** Stream ids lanes use; the page that opened the shared channel takes the even ones, the other page the odd ones. */
export const LANE_IDS = { first: 2, last: 1023 } as const;

/** The largest envelope a lane carries (Chromium takes data-channel messages up to 256 KiB); larger ones go through the page. */
export const LANE_MESSAGE_BYTES = 128 * 1024;

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
