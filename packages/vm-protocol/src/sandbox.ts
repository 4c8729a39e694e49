import { z } from 'zod';
import { IceConfig } from './host.ts';
import { LaneId, LinkSignal } from './lane.ts';
import { LIMITS } from './limits.ts';
import { LaneIn, LaneOut, MAX_HANDED } from './worker.ts';

/**
 * Messages of the task sandbox (docs/sandbox.md). A host page runs each job's task workers
 * inside a sandboxed frame of its own, an opaque origin with no storage and no network but its
 * relay lanes; the page talks to the frame (`ToSandbox`, `FromSandbox`) to start, stop and flag
 * workers and to make lanes, and to each worker directly through a MessagePort (worker.ts messages).
 */

/** Where host pages load the frame; the coordinator serves it with the task-worker bundle inline. */
export const SANDBOX_PATH = '/sandbox.html';

/** A MessagePort, as far as this package without DOM types can say: pages and workers use it as one. */
export interface SandboxPort {
  postMessage(message: unknown, transfer?: unknown[]): void;
  start(): void;
  close(): void;
}
const Port = z.custom<SandboxPort>((v) => {
  const MessagePort = (globalThis as { MessagePort?: abstract new () => unknown }).MessagePort;
  return MessagePort !== undefined && v instanceof MessagePort;
}, 'a MessagePort');
const WorkerId = z.number().int().nonnegative();
const LinkId = z.number().int().nonnegative();
const Cell = z.number().int().min(0).max(MAX_HANDED - 1);

const FlagChange = z.object({ id: WorkerId, op: z.enum(['store', 'or']), cell: Cell, bits: z.number().int().min(0).max(3) });
export type FlagChange = z.infer<typeof FlagChange>;
/** Flag changes one message carries; a page that sets more in one turn sends more messages. */
export const MAX_FLAG_CHANGES = 4096;

/** A lane's end as its frame hands it to a worker: the worker.ts message, whose channel the frame adds. */
export const LaneGift = z.discriminatedUnion('type', [LaneOut.omit({ channel: true }), LaneIn.omit({ channel: true })]);
export type LaneGift = z.infer<typeof LaneGift>;

/** The page to its frame of one job. */
export const ToSandbox = z.discriminatedUnion('type', [
  /** The job's program, once, before any worker: each worker imports it from this text. */
  z.object({ type: z.literal('program'), url: z.string().max(512), source: z.string().max(LIMITS.programBytes) }),
  /** Start a worker that speaks worker.ts messages on `port`. */
  z.object({ type: z.literal('spawn'), id: WorkerId, port: Port }),
  z.object({ type: z.literal('terminate'), id: WorkerId }),
  /**
   * Set (`store`) or raise (`or`) bits of SAFE_POINT_FLAGS in cells of workers' flags, in order:
   * what the page sets in one turn goes in one message (a batch of starts sets a cell per task).
   */
  z.object({ type: z.literal('flags'), items: z.array(FlagChange).min(1).max(MAX_FLAG_CHANGES) }),
  /** Are you there? A frame has a process of its own, which may die alone (out of memory): the page asks every second. */
  z.object({ type: z.literal('ping') }),
  /**
   * Make a link (lane.ts): an RTCPeerConnection to another host's frame of this job, whose signals
   * go through the pages. The `offer` side makes the offer; the other waits for it.
   */
  z.object({ type: z.literal('link'), link: LinkId, offer: z.boolean(), ice: IceConfig }),
  /** A signal from the other frame of `link`. */
  z.object({ type: z.literal('signal'), link: LinkId, signal: LinkSignal }),
  z.object({ type: z.literal('unlink'), link: LinkId }),
  /** Create stream `stream` of `link` and hand it to worker `id` with `gift`; the frame answers `lane-made`. */
  z.object({ type: z.literal('lane'), link: LinkId, stream: LaneId, id: WorkerId, gift: LaneGift }),
]);
export type ToSandbox = z.infer<typeof ToSandbox>;

/** A frame to its page. */
export const FromSandbox = z.discriminatedUnion('type', [
  /** The frame runs and takes messages; `isolated` says whether its workers can share flags. */
  z.object({ type: z.literal('ready'), isolated: z.boolean() }),
  /** A worker reported an uncaught error or could not start. */
  z.object({ type: z.literal('worker-error'), id: WorkerId, message: z.string().max(LIMITS.logLineChars) }),
  /**
   * A worker handed its frozen task's state to the frame (`WorkerToFrame`), which ended it at `at`
   * (`performance.timeOrigin + performance.now()` in the frame) and sends the state on.
   */
  z.object({ type: z.literal('worker-stopped'), id: WorkerId, at: z.number().nonnegative() }),
  z.object({ type: z.literal('pong') }),
  /** A signal of `link` for the other frame. */
  z.object({ type: z.literal('signal'), link: LinkId, signal: LinkSignal }),
  /** `link` failed, or its peer misbehaved: it is closed, with its lanes. */
  z.object({ type: z.literal('unlinked'), link: LinkId }),
  /** Stream `stream` of `link` is with its worker (`made`), or could not be. */
  z.object({ type: z.literal('lane-made'), link: LinkId, stream: LaneId, made: z.boolean() }),
]);
export type FromSandbox = z.infer<typeof FromSandbox>;

/**
 * What a task worker tells its frame: its task froze, here is its state (`message`, a worker.ts
 * checkpoint, with the buffers it moves) and the port to the page it goes on. The frame ends the
 * worker at once and sends the state on: within one process the state moves to the frame in O(1),
 * while copying a 16 MiB state to the page's process takes ~20 ms, which the task's thread then no
 * longer spends. On the port, the state stays behind everything the worker posted before it.
 */
export const WorkerToFrame = z.object({
  type: z.literal('frozen'),
  port: Port,
  message: z.unknown(),
  transfer: z.array(z.custom<ArrayBuffer>((v) => v instanceof ArrayBuffer, 'an ArrayBuffer')).max(1_000_000),
});
export type WorkerToFrame = z.infer<typeof WorkerToFrame>;

/** What a frame hands each worker it starts, before the worker loads any task code. */
export const SandboxBoot = z.object({
  type: z.literal('boot'),
  port: Port,
  programUrl: z.string().max(512),
  source: z.string().max(LIMITS.programBytes),
  flags: z.custom<SharedArrayBuffer>((v) => typeof SharedArrayBuffer !== 'undefined' && v instanceof SharedArrayBuffer).nullable(),
});
export type SandboxBoot = z.infer<typeof SandboxBoot>;
