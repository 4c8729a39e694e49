import { z } from 'zod';
import { JobId, Tid } from './ids.ts';
import { LANE_TOKEN_CHARS } from './lane.ts';
import { LIMITS } from './limits.ts';
import { Attempt, Checkpoint, TaskAssignment, TaskOp, WireError } from './task.ts';

/** Bumped on any change a peer of the previous version could not parse. */
export const PROTOCOL_VERSION = 7;

const Fraction = z.number().min(0).max(1);

export const VolunteerKey = z.string().regex(/^[A-Za-z0-9_-]{32,128}$/, 'volunteer: 32 to 128 base64url characters');

export const TaskRef = z.object({ tid: Tid, attempt: Attempt });
export type TaskRef = z.infer<typeof TaskRef>;

/** The last seq this task sent to each receiver: exit notifications are ordered after them. */
const SentSeqs = z.array(z.object({ to: Tid, seq: z.number().int().nonnegative() })).max(LIMITS.spawnPerCall).optional();

export const TaskOutcome = z.discriminatedUnion('ok', [
  z.object({ tid: Tid, attempt: Attempt, ok: z.literal(true), value: z.unknown(), sent: SentSeqs }),
  z.object({ tid: Tid, attempt: Attempt, ok: z.literal(false), error: WireError, sent: SentSeqs }),
]);
export type TaskOutcome = z.infer<typeof TaskOutcome>;

const batch = <T extends z.ZodType>(item: T) => z.array(item).min(1).max(LIMITS.itemsPerBatch);

// ---------------------------------------------------------------- host → coordinator

export const HelloMsg = z.object({
  type: z.literal('hello'),
  protocol: z.number().int(),
  /** Absent on a host's first visit; the coordinator then issues an identity. */
  identity: z.object({ hostId: z.string().max(LIMITS.idChars), secret: z.string().max(128) }).nullable(),
  /**
   * The volunteer: a random key that every tab of one browser profile shares (a tab is a host, a
   * profile is a volunteer). Replicas of a task go to distinct volunteers, and trust is earned
   * by a volunteer; the coordinator knows it by a hash of this key, which stays secret.
   */
  volunteer: VolunteerKey,
  slots: z.number().int().min(0).max(LIMITS.slotsPerHost),
  /** Tasks this host still runs from before a reconnect: they keep running if still assigned to it. */
  running: z.array(TaskRef).max(LIMITS.heldPerHost),
  userAgent: z.string().max(512),
});

export const HeartbeatMsg = z.object({ type: z.literal('heartbeat') });

/** How many tasks the host wants to hold at once (running + queued); 0 stops new assignments. */
export const CapacityMsg = z.object({
  type: z.literal('capacity'),
  slots: z.number().int().min(0).max(LIMITS.slotsPerHost),
});

const Count = z.number().int().nonnegative();

/** Progress of running tasks, with the messages each has sent and received so far. */
export const ProgressMsg = z.object({
  type: z.literal('progress'),
  items: batch(
    z.object({ tid: Tid, attempt: Attempt, fraction: Fraction, messagesOut: Count.optional(), messagesIn: Count.optional() }),
  ),
});

/**
 * A task's request. `requestId` counts the requests of one task from 1, so that a task replaying
 * from a checkpoint gets the same answer again (the same tids from the same spawn).
 */
export const RequestMsg = z.object({
  type: z.literal('request'),
  tid: Tid,
  attempt: Attempt,
  requestId: z.number().int().min(1),
  op: TaskOp,
});

/** Where tasks run now, so that a host can open a data channel to the host of a peer task. */
export const LocateMsg = z.object({ type: z.literal('locate'), tids: z.array(Tid).min(1).max(LIMITS.itemsPerBatch) });

export const CheckpointMsg = z.object({
  type: z.literal('checkpoint'),
  tid: Tid,
  attempt: Attempt,
  checkpoint: Checkpoint,
});

/** The coordinator's name for one kept image (`keep-image`): the `image` of its parts. */
export const KeptImageId = z.number().int().min(1).max(0x7fffffff);

/**
 * A checkpoint kept off the tab with what a crash restart needs beside the state: its image
 * (task-image.ts: state bytes, unread messages, per-sender seqs, sender log) came just before in
 * `part` frames. The coordinator keeps it as the task's restart point and tells the task's
 * senders what it covers (`covered`).
 */
export const CheckpointImageMsg = z.object({
  type: z.literal('checkpoint-image'),
  tid: Tid,
  attempt: Attempt,
  /** The parts' `image` (envelope.ts ImagePartHeader): this host's count of the checkpoint images it sent. */
  image: z.number().int().min(1).max(0x7fffffff),
  /** Up to LIMITS.checkpointImageBytes the coordinator keeps it; a larger one is kept by another volunteer (`keep-image`). */
  imageBytes: z.number().int().positive().max(LIMITS.imageBytes),
});

/** The image `keep-image` named is stored here: this host keeps it for the coordinator until told to forget it. */
export const ImageKeptMsg = z.object({ type: z.literal('image-kept'), tid: Tid, image: KeptImageId });

/** The image `return-image` asked for came just before, in `part` frames of `attempt` and `image`. */
export const ImageReturnedMsg = z.object({ type: z.literal('image-returned'), tid: Tid, attempt: Attempt, image: KeptImageId });

/** After a welcome: the tasks whose images this host keeps (`keep-image`); the coordinator answers with those to forget. */
export const ImagesKeptMsg = z.object({ type: z.literal('images-kept'), tids: batch(Tid) });

/**
 * After a welcome: the ended tasks whose sender logs this host keeps (`ended-log`); the
 * coordinator answers with the jobs to forget.
 */
export const LogsKeptMsg = z.object({ type: z.literal('logs-kept'), tids: batch(Tid) });

/**
 * The sender log of task `tid` here passed its share for `to`: `to` is asked for a checkpoint.
 * `dropped`: it let go of messages to `to` that no checkpoint of `to` covers, so `to` can no
 * longer be restarted exactly before its next checkpoint.
 */
export const LogFullMsg = z.object({ type: z.literal('log-full'), tid: Tid, attempt: Attempt, to: Tid, dropped: z.boolean() });

export const ResultsMsg = z.object({ type: z.literal('results'), items: batch(TaskOutcome) });

export const LogMsg = z.object({
  type: z.literal('log'),
  tid: Tid,
  attempt: Attempt,
  line: z.string().max(LIMITS.logLineChars),
});

/** What made a task move: the person at the host came back, the page is going, or the coordinator said so. */
export const MigrationReason = z.enum(['hidden', 'input', 'idle-detector', 'pagehide', 'freeze', 'beforeunload', 'battery', 'order']);
export type MigrationReason = z.infer<typeof MigrationReason>;

/** MPVM's event: these tasks are leaving this host; messages for them wait at the coordinator from now on. */
export const MigratingMsg = z.object({
  type: z.literal('migrating'),
  tasks: batch(TaskRef),
  reason: MigrationReason,
});

/**
 * A task has left this host. Its image (task-image.ts) came just before, in `part` frames, unless
 * `imageBytes` is null: a task that had not started goes back as it was assigned.
 */
export const MigratedMsg = z.object({
  type: z.literal('migrated'),
  tid: Tid,
  attempt: Attempt,
  imageBytes: z.number().int().positive().max(LIMITS.imageBytes).nullable(),
  /** True when the worker stopped at a safe point; false when it was terminated and replay covers the rest. */
  frozen: z.boolean(),
  /** Event → worker terminated on this host (MPVM's obtrusiveness). */
  obtrusivenessMs: z.number().nonnegative().max(3_600_000),
  /** `channel`: the image went straight to the destination the coordinator named, over a data channel. */
  via: z.enum(['coordinator', 'channel']).default('coordinator'),
});

/** The image of this assignment has not come (over a data channel) in time: have it sent through the coordinator. */
export const ImageMissingMsg = z.object({ type: z.literal('image-missing'), tid: Tid, attempt: Attempt });

/**
 * The image of this assignment names messages the task read on lanes since its checkpoint, by
 * sender and seq, not their bytes (task-image.ts): each sender is to send `tid` again what it
 * sent after `after`. Asked again while some still have not come.
 */
export const RefillMsg = z.object({
  type: z.literal('refill'),
  tid: Tid,
  attempt: Attempt,
  from: batch(z.object({ tid: Tid, after: z.number().int().min(0) })),
});

/** A migrated task runs again on this host: the end of its migration. */
export const ResumedMsg = z.object({ type: z.literal('resumed'), tid: Tid, attempt: Attempt });

/** Task `from` of this host sends `to` through the relay: it asks for a relay lane (lane.ts). */
export const LaneOpenMsg = z.object({ type: z.literal('lane-open'), from: Tid, to: Tid });

const LaneToken = z.string().regex(new RegExp(`^[0-9a-f]{${LANE_TOKEN_CHARS}}$`));

/** The receiving end given to this host has no task to take it: the lane closes. */
export const LaneDeclinedMsg = z.object({ type: z.literal('lane-declined'), token: LaneToken });

/** Asked back by `withdraw`: these never started here, and never will. */
export const WithdrawnMsg = z.object({ type: z.literal('withdrawn'), tasks: batch(TaskRef) });

export const HostMessage = z.discriminatedUnion('type', [
  HelloMsg,
  HeartbeatMsg,
  CapacityMsg,
  ProgressMsg,
  CheckpointMsg,
  CheckpointImageMsg,
  LogFullMsg,
  ResultsMsg,
  LogMsg,
  RequestMsg,
  LocateMsg,
  MigratingMsg,
  MigratedMsg,
  ResumedMsg,
  ImageMissingMsg,
  RefillMsg,
  LaneOpenMsg,
  LaneDeclinedMsg,
  WithdrawnMsg,
  ImageKeptMsg,
  ImageReturnedMsg,
  ImagesKeptMsg,
  LogsKeptMsg,
]);
export type HostMessage = z.infer<typeof HostMessage>;

// ---------------------------------------------------------------- coordinator → host

/** How data channels find their way: the coordinator's WEBPVM_ICE_SERVERS and WEBPVM_ICE_TRANSPORT_POLICY. */
export const IceConfig = z.object({
  /** RTCIceServer entries (STUN/TURN); empty on a local network. */
  iceServers: z.array(z.record(z.string(), z.unknown())).max(16),
  /**
   * `relay`: data channels go through the TURN servers only, so no volunteer learns another's
   * address from its ICE candidates (and two hosts that cannot reach each other still connect).
   */
  iceTransportPolicy: z.enum(['all', 'relay']).default('all'),
});
export type IceConfig = z.infer<typeof IceConfig>;

/** The entries an RTCPeerConnection takes (a `urls` of strings; the DOM calls them RTCIceServer): it throws on any other, so the rest are left out. */
export function usableIceServers(entries: IceConfig['iceServers']): IceConfig['iceServers'] {
  return entries.filter(({ urls }) => typeof urls === 'string' || (Array.isArray(urls) && urls.every((url) => typeof url === 'string')));
}

/**
 * A coordinator's public URL (`WEBPVM_PUBLIC_URL`): an http(s) origin a page can be served from
 * and fail over to.
 */
export const CoordinatorUrl = z
  .string()
  .max(LIMITS.urlChars)
  .refine((text) => /^https?:\/\/[^/?#\s]+\/?$/.test(text), 'an http or https origin, such as https://grid.example.org');
export const CoordinatorUrls = z.array(CoordinatorUrl).max(LIMITS.clusterCoordinators);

export const WelcomeMsg = z.object({
  type: z.literal('welcome'),
  protocol: z.number().int(),
  hostId: z.string(),
  secret: z.string(),
  /** The volunteer this host is part of, as the coordinator names it (from the key in `hello`). */
  volunteerId: z.string().max(LIMITS.idChars),
  heartbeatMs: z.number().int().positive(),
  /** The least time between two checkpoints a host persists and forwards for one task. */
  checkpointIntervalMs: z.number().int().nonnegative(),
  /** This host's id on the coordinator's PeerServer (`/peerjs`), issued to connected hosts only. */
  peerId: z.string().max(LIMITS.idChars),
  /** The PeerServer takes `peerId` only with this token: a page that learns the id cannot take it up. */
  peerToken: z.string().max(LIMITS.idChars),
  /**
   * Drawn as the coordinator process starts: a page that sees it change knows the coordinator
   * restarted, and lost the messages it held and where tasks restarted from.
   */
  boot: z.string().max(LIMITS.idChars),
  /** The public URLs of the cluster's coordinators this one knows (docs/cluster.md); empty when it runs alone. */
  coordinators: CoordinatorUrls.default([]),
  ...IceConfig.shape,
});

export const AssignMsg = z.object({ type: z.literal('assign'), tasks: batch(TaskAssignment) });

export const CancelMsg = z.object({
  type: z.literal('cancel'),
  tasks: batch(TaskRef),
  reason: z.string().max(LIMITS.logLineChars),
});

/**
 * Another host has free slots and nothing else to run: give back those of these tasks that have
 * not started (`withdrawn`); the others run here as before.
 */
export const WithdrawMsg = z.object({ type: z.literal('withdraw'), tasks: batch(TaskRef) });

/** The coordinator has stored these outcomes durably: the host may forget them. */
export const AckMsg = z.object({ type: z.literal('ack'), tasks: batch(TaskRef) });

export const ReplyMsg = z.discriminatedUnion('ok', [
  z.object({ type: z.literal('reply'), tid: Tid, requestId: z.number().int().min(1), ok: z.literal(true), value: z.unknown() }),
  z.object({ type: z.literal('reply'), tid: Tid, requestId: z.number().int().min(1), ok: z.literal(false), error: WireError }),
]);

/** hostId and peerId are null while a task is not running anywhere (pending, or finished). */
export const RoutesMsg = z.object({
  type: z.literal('routes'),
  routes: z.array(z.object({ tid: Tid, hostId: z.string().nullable(), peerId: z.string().nullable() })).max(LIMITS.itemsPerBatch),
});

export const ErrorMsg = z.object({
  type: z.literal('error'),
  code: WireError.shape.code,
  message: z.string(),
  /** The `type` of the message that caused it, when it could be read. */
  ref: z.string().max(64).nullable(),
});

/**
 * The answer to `migrating`, for each task: where it will run next, so its host may send the
 * image straight there over a data channel, as the parts of attempt `attempt`; `peerId` null when
 * no other host can take it now (the image goes through the coordinator).
 */
export const DestinationMsg = z.object({
  type: z.literal('destination'),
  tid: Tid,
  attempt: Attempt,
  peerId: z.string().max(LIMITS.idChars).nullable(),
});

/**
 * The image of attempt `attempt` of `tid` may come to this host straight from the host at
 * `peerId`, over a data channel: pieces of it from any other peer are dropped.
 */
export const ImageComingMsg = z.object({
  type: z.literal('image-coming'),
  tid: Tid,
  attempt: Attempt,
  peerId: z.string().max(LIMITS.idChars),
});

/** Send the image kept for `tid` again, through the coordinator, as the parts of attempt `attempt`. */
export const SendImageMsg = z.object({ type: z.literal('send-image'), tid: Tid, attempt: Attempt });

/** The coordinator orders these tasks to move (load balance, drain, `POST /api/tasks/:tid/migrate`). */
export const MigrateMsg = z.object({ type: z.literal('migrate'), tasks: batch(TaskRef) });

/**
 * A host left the coordinator: data channels to its PeerJS id are dead even if WebRTC has not
 * noticed yet, so what was sent over them unacknowledged goes through the relay now.
 */
export const PeerGoneMsg = z.object({ type: z.literal('peer-gone'), peerId: z.string().max(LIMITS.idChars) });

/**
 * One end of a relay lane from `from` to `to`, for this host's task on that side (`out`: the
 * sender's, `in`: the receiver's): its worker opens RELAY_LANE_PATH with `token`.
 */
export const LaneMsg = z.object({ type: z.literal('lane'), end: z.enum(['out', 'in']), from: Tid, to: Tid, token: LaneToken });

/** No relay lane from `from` to `to` now: `to` runs on no other host, or either host holds as many lanes as it takes. */
export const LaneRefusedMsg = z.object({ type: z.literal('lane-refused'), from: Tid, to: Tid });

/**
 * Checkpoints kept off their tabs cover what these tasks of this host sent up to `seq` to `to`:
 * their sender logs forget those messages.
 */
export const CoveredMsg = z.object({
  type: z.literal('covered'),
  items: batch(z.object({ tid: Tid, to: Tid, seq: z.number().int().min(1) })),
});

/**
 * These tasks restarted from their checkpoints after their hosts were lost: the tasks of their
 * jobs on this host, and the logs of those that ended here, send again what they hold for them.
 */
export const RestartedMsg = z.object({ type: z.literal('restarted'), tids: batch(Tid) });

/**
 * These tasks' host came back after its connection broke: what was on its way to them may have
 * been lost with it. The tasks of their jobs on this host, and the logs of those that ended here,
 * send them again what their host did not acknowledge.
 */
export const ReconnectedMsg = z.object({ type: z.literal('reconnected'), tids: batch(Tid) });

/**
 * Task `to` resumes from an image that names messages it read, not their bytes: the tasks here,
 * and the logs of those that ended here, send it again what they sent it after `after`.
 */
export const SendAgainMsg = z.object({
  type: z.literal('send-again'),
  to: Tid,
  from: batch(z.object({ tid: Tid, after: z.number().int().min(0) })),
});

/** Take a checkpoint of these tasks at their next safe point: a sender's log for them is full. */
export const CheckpointDueMsg = z.object({ type: z.literal('checkpoint-due'), tasks: batch(TaskRef) });

/**
 * Keep this image of another volunteer's task (it came just before, in `part` frames of `attempt`
 * and `image`): its checkpoint is too large for the coordinator to keep, and must outlive its tab.
 */
export const KeepImageMsg = z.object({
  type: z.literal('keep-image'),
  tid: Tid,
  attempt: Attempt,
  image: KeptImageId,
  imageBytes: z.number().int().positive().max(LIMITS.imageBytes),
});

/** Send the image kept for `tid` back through the coordinator, as the parts of `attempt` and `image`, then `image-returned`. */
export const ReturnImageMsg = z.object({ type: z.literal('return-image'), tid: Tid, attempt: Attempt, image: KeptImageId });

/** The sender logs kept here of these jobs' ended tasks are no longer needed: the jobs ended. */
export const ForgetLogsMsg = z.object({ type: z.literal('forget-logs'), jobs: batch(JobId) });

/** The cluster's coordinators changed (one joined or was forgotten): where to fail over to. */
export const ClusterMsg = z.object({ type: z.literal('cluster'), coordinators: CoordinatorUrls });

/** The images kept here for these tasks are no longer needed. */
export const ForgetImagesMsg = z.object({ type: z.literal('forget-images'), tids: batch(Tid) });

export const CoordinatorMessage = z.union([
  WelcomeMsg,
  AssignMsg,
  CancelMsg,
  AckMsg,
  ReplyMsg,
  RoutesMsg,
  ErrorMsg,
  MigrateMsg,
  PeerGoneMsg,
  DestinationMsg,
  ImageComingMsg,
  SendImageMsg,
  LaneMsg,
  LaneRefusedMsg,
  WithdrawMsg,
  CoveredMsg,
  RestartedMsg,
  ReconnectedMsg,
  SendAgainMsg,
  CheckpointDueMsg,
  KeepImageMsg,
  ReturnImageMsg,
  ForgetImagesMsg,
  ForgetLogsMsg,
  ClusterMsg,
]);
export type CoordinatorMessage = z.infer<typeof CoordinatorMessage>;

export type HostMessageOf<T extends HostMessage['type']> = Extract<HostMessage, { type: T }>;
export type CoordinatorMessageOf<T extends CoordinatorMessage['type']> = Extract<CoordinatorMessage, { type: T }>;
