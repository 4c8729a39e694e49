import { encodeEncodedMessage, encodedSize } from '@webpvm/vm-protocol/envelope';
import { WebpvmError, describeIssues, isErrorCode } from '@webpvm/vm-protocol/errors';
import { Tid, parseTid } from '@webpvm/vm-protocol/ids';
import { LANE_MESSAGE_BYTES, type LaneChannel, lanePieces } from '@webpvm/vm-protocol/lane';
import { LIMITS } from '@webpvm/vm-protocol/limits';
import { TaskOp } from '@webpvm/vm-protocol/task';
import type { Counters } from '@webpvm/vm-protocol/task-image';
import { encodeValue, type EncodedValue } from '@webpvm/vm-protocol/value-codec';
import { REPORT_BATCH, type FromWorker, type ToWorker } from '@webpvm/vm-protocol/worker';
import type { ReceivedMessage, RecvFilter, TaskContext } from '../ctx.ts';
import type { Mailbox } from './mailbox.ts';
import { toJsonValue } from './json-value.ts';
import { ReportBatch } from './report-batch.ts';
import type { SenderLog } from './sender-log.ts';

export type MessagingApi = Pick<
  TaskContext,
  'spawn' | 'send' | 'mcast' | 'recv' | 'probe' | 'joinGroup' | 'leaveGroup' | 'groupSize' | 'bcast' | 'barrier' | 'notifyExit'
>;

type Reply = Extract<ToWorker, { type: 'reply' }>;

export interface TaskMessaging {
  /** The ctx members that talk to other tasks and to the virtual machine. */
  readonly api: MessagingApi;
  /** Settles the request that `reply` answers. */
  reply(reply: Reply): void;
  /** What the task sends `to` may go on this channel from now on (lane.ts in vm-protocol). */
  openLane(to: string, channel: LaneChannel): void;
  /** The lane to `to` is gone at the other end: what comes next goes through the host. */
  closeLane(to: string): void;
  /** The host of `to` acknowledged what it got from this task up to `seq`. */
  acked(to: string, seq: number): void;
  /** Hands the host the copies of what went on lanes unacknowledged: before a checkpoint, which the host keeps only with them. */
  flush(): void;
  /** The task has ended: later calls fail, waiting ones stay unsettled, its lanes close. */
  close(): void;
  /** The seq last sent to each receiver and the number of requests made: a checkpoint keeps them. */
  counters(): Counters;
  /** The checkpoint of `to` kept off its tab covers what this task sent it up to `seq`. */
  covered(to: string, seq: number): void;
  /**
   * Sends again what the sender log holds for `to` (for every receiver: undefined), but what
   * `acked` has for each receiver and before, through the host's relay.
   */
  resend(to?: string, acked?: ReadonlyMap<string, number>): void;
  /** The sender log, as a checkpoint keeps it; empty without one. */
  logged(): Uint8Array<ArrayBuffer>[];
  /**
   * The task ended (before `close`): what its sender log holds goes to the host to keep
   * (`ended-log`), for receivers that may need it again after it is gone.
   */
  ended(): void;
}

const MAX_TAG = 0x7fffffff;
/** Tids remembered as checked; past this many the memory starts over. */
const MAX_CHECKED_TIDS = 10_000;
/** A lane this far behind takes no more: what comes next waits in the lane's queue. */
const LANE_HIGH_WATER = 1024 * 1024;
/** Where a lane's queue is refilled from. */
const LANE_LOW_WATER = 256 * 1024;
/**
 * A task keeps this much at most that it wrote on lanes, queued or unacknowledged: what comes
 * next goes through the host, whose channel paces it.
 */
const LANE_UNACKED_BYTES = 64 * 1024 * 1024;

/**
 * The sending end of a lane, and what waits for room on it. A stream keeps to its lane while the
 * lane is behind (a message that went through the host instead would wait at the receiver for
 * the lane's, see Inboxes.held).
 */
interface LaneOut {
  channel: LaneChannel;
  queue: Uint8Array<ArrayBuffer>[];
}

/**
 * PVM's message passing for one task: checks every call where the program can still catch the
 * error, numbers the messages to each receiver from 1, and turns spawn, groups, barriers and
 * exit notifications into requests answered by the host.
 */
export function createMessaging(
  task: { tid: string; jobId: string },
  mailbox: Mailbox,
  post: (message: FromWorker, transfer?: ArrayBuffer[]) => void,
  resume: Counters = { sent: [], requests: 0 },
  log: SenderLog | null = null,
): TaskMessaging {
  const { tid, jobId } = task;
  // A task resumed from a checkpoint numbers on from there: what it sends again repeats a seq, and the receiver drops it.
  const seqs = new Map<string, number>(resume.sent.map(({ to, seq }) => [to, seq]));
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
  let requests = resume.requests;
  let closed = false;

  const checkOpen = (): void => {
    if (closed) throw new WebpvmError('E_CONFLICT', `task ${tid} has ended`);
  };

  // A task sends to the same few tids over and over: each is checked once.
  const addressable = new Set<string>();
  const checkTid = (to: unknown): string => {
    if (typeof to === 'string' && addressable.has(to)) return to;
    if (typeof to !== 'string' || !Tid.safeParse(to).success) throw new WebpvmError('E_BAD_REQUEST', `not a tid: ${String(to)}`);
    if (parseTid(to).jobId !== jobId) {
      throw new WebpvmError('E_FORBIDDEN', `${to} is a task of another job: a task may address only tids of its own job`);
    }
    if (addressable.size >= MAX_CHECKED_TIDS) addressable.clear();
    addressable.add(to);
    return to;
  };

  const checkTag = (tag: unknown): number => {
    if (!Number.isInteger(tag) || (tag as number) < 0 || (tag as number) > MAX_TAG) {
      throw new WebpvmError('E_BAD_REQUEST', `a tag is an integer from 0 to ${MAX_TAG}, not ${String(tag)}`);
    }
    return tag as number;
  };

  const lanes = new Map<string, LaneOut>();
  /**
   * Per receiver, what went on lanes and its host has not acknowledged, in seq order. The copies
   * stay in this worker, where keeping one costs nothing: handing each to the host would copy it
   * across processes (the host's page is another process than the sandbox). A task terminated
   * before it handed them over sends them again from its checkpoint.
   */
  const unacked = new Map<string, { seq: number; bytes: Uint8Array<ArrayBuffer> }[]>();
  let unackedBytes = 0;
  // The host counts what went on lanes and knows each receiver's last seq from these, a batch at a time.
  const wrote = new ReportBatch<{ to: string; seq: number }>((written) => post({ type: 'lane-wrote', tid, pairs: summarize(written) }));

  const keep = (to: string, seq: number, bytes: Uint8Array<ArrayBuffer>): void => {
    let entries = unacked.get(to);
    if (!entries) {
      entries = [];
      unacked.set(to, entries);
    }
    entries.push({ seq, bytes });
    unackedBytes += bytes.byteLength;
    wrote.add({ to, seq });
  };

  /** Hands the host the copies of what went to `to` (to everyone: undefined) unacknowledged; it keeps them from now on. */
  const handCopies = (to?: string): void => {
    wrote.flush();
    const envelopes: Uint8Array<ArrayBuffer>[] = [];
    for (const [receiver, entries] of unacked) {
      if (to !== undefined && receiver !== to) continue;
      unacked.delete(receiver);
      for (const entry of entries) {
        envelopes.push(entry.bytes);
        unackedBytes -= entry.bytes.byteLength;
      }
    }
    // Copied, not transferred: a lane's queue may still hold the same bytes.
    for (let i = 0; i < envelopes.length; i += REPORT_BATCH) post({ type: 'lane-sent', tid, envelopes: envelopes.slice(i, i + REPORT_BATCH) });
  };

  /** The data encoded once for all its receivers, as the receiver will see it, whichever way it travels. */
  const wireData = (data: unknown): EncodedValue => {
    let encoded: EncodedValue;
    try {
      encoded = encodeValue(data);
    } catch (error) {
      throw new WebpvmError('E_BAD_REQUEST', `the message data cannot be sent: ${messageOf(error)}`);
    }
    const size = encodedSize(encoded);
    if (size > LIMITS.messageBytes) {
      throw new WebpvmError('E_TOO_LARGE', `the message data is ${size} bytes, over the limit of ${LIMITS.messageBytes}`);
    }
    return encoded;
  };

  /** Writes the message on the lane to `to`, or queues it there; false when it must go through the host. */
  const sendOnLane = (to: string, seq: number, bytes: Uint8Array<ArrayBuffer>): boolean => {
    const lane = lanes.get(to);
    if (!lane || lane.channel.readyState !== 'open') return false;
    const whole = bytes.byteLength <= LANE_MESSAGE_BYTES;
    if (unackedBytes + bytes.byteLength > LANE_UNACKED_BYTES) return false;
    const frames = whole ? [bytes] : lanePieces(bytes);
    for (const [i, frame] of frames.entries()) {
      if (lane.queue.length > 0 || lane.channel.bufferedAmount > LANE_HIGH_WATER) {
        lane.queue.push(frame);
        continue;
      }
      try {
        lane.channel.send(frame);
      } catch {
        if (i === 0) return false;
        // Pieces of it are on the lane: the lane goes, and the copy kept goes through the host.
        lane.queue.length = 0;
        lane.channel.close();
        break;
      }
    }
    keep(to, seq, bytes);
    return true;
  };

  /** Writes what waits on the lane while it has room; a failed write closes the lane, and the host sends on what it did not carry. */
  const drain = (lane: LaneOut): void => {
    while (lane.queue.length > 0 && lane.channel.bufferedAmount <= LANE_HIGH_WATER) {
      const bytes = lane.queue.shift()!;
      try {
        lane.channel.send(bytes);
      } catch {
        lane.queue.length = 0;
        lane.channel.close();
      }
    }
  };

  const postSend = (to: string, tag: number, data: EncodedValue): void => {
    const seq = (seqs.get(to) ?? 0) + 1;
    const envelope = encodeEncodedMessage({ from: tid, to, tag, seq }, data) as Uint8Array<ArrayBuffer>;
    if (sendOnLane(to, seq, envelope)) log?.add(to, seq, envelope);
    else if (log) {
      // The host gets a copy: the log keeps the envelope.
      post({ type: 'send', tid, envelope });
      log.add(to, seq, envelope);
    } else post({ type: 'send', tid, envelope }, [envelope.buffer]);
    seqs.set(to, seq);
  };

  const sendEach = (tids: readonly unknown[], tag: unknown, data: unknown): void => {
    checkOpen();
    const to = tids.map(checkTid);
    const checkedTag = checkTag(tag);
    const sent = wireData(data);
    for (const receiver of to) postSend(receiver, checkedTag, sent);
  };

  const request = async (op: TaskOp): Promise<unknown> => {
    checkOpen();
    const parsed = TaskOp.safeParse(op);
    if (!parsed.success) throw new WebpvmError('E_BAD_REQUEST', describeIssues(parsed.error));
    const requestId = ++requests;
    return new Promise((resolve, reject) => {
      pending.set(requestId, { resolve, reject });
      post({ type: 'request', tid, requestId, op: parsed.data });
    });
  };

  const recv = async (filter: RecvFilter = {}): Promise<ReceivedMessage | null> => {
    checkOpen();
    const { from, tag, timeoutMs = Infinity } = filter;
    if (from !== undefined && typeof from !== 'string') throw new WebpvmError('E_BAD_REQUEST', `recv: from is a tid, not ${String(from)}`);
    if (tag !== undefined) checkTag(tag);
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) {
      throw new WebpvmError('E_BAD_REQUEST', `recv: timeoutMs is a number of at least 0, not ${String(timeoutMs)}`);
    }
    return mailbox.receive({ from, tag }, timeoutMs);
  };

  const api: MessagingApi = {
    spawn: async (name, inputs) => {
      if (!Array.isArray(inputs)) throw new WebpvmError('E_BAD_REQUEST', 'spawn: inputs is an array, one input per task');
      if (inputs.length === 0) return [];
      const json = inputs.map((input, i) => {
        try {
          return toJsonValue(input, `spawn input ${i}`);
        } catch (error) {
          throw error instanceof WebpvmError && error.code === 'E_TOO_LARGE' ? error : new WebpvmError('E_BAD_REQUEST', messageOf(error));
        }
      });
      return (await request({ kind: 'spawn', name, inputs: json })) as string[];
    },
    send: (to, tag, data) => sendEach([to], tag, data),
    mcast: (tids, tag, data) => sendEach(tids, tag, data),
    // One implementation behind the three signatures: only a call with timeoutMs can give null.
    recv: recv as MessagingApi['recv'],
    probe: (filter = {}) => mailbox.has(filter),
    joinGroup: async (group) => (await request({ kind: 'join', group })) as number,
    leaveGroup: async (group) => {
      await request({ kind: 'leave', group });
    },
    groupSize: async (group) => (await request({ kind: 'size', group })) as number,
    bcast: async (group, tag, data) => {
      checkTag(tag);
      const sent = wireData(data);
      const members = (await request({ kind: 'members', group })) as string[];
      checkOpen();
      for (const member of members) if (member !== tid) postSend(member, tag, sent);
    },
    barrier: async (group, count) => {
      await request({ kind: 'barrier', group, count });
    },
    notifyExit: async (tids, tag) => {
      const checked = tids.map(checkTid);
      checkTag(tag);
      if (checked.length > 0) await request({ kind: 'notify', tids: checked, tag });
    },
  };

  return {
    api,
    reply: (reply) => {
      const waiting = pending.get(reply.requestId);
      if (!waiting) return;
      pending.delete(reply.requestId);
      if (reply.ok) waiting.resolve(reply.value);
      else waiting.reject(new WebpvmError(isErrorCode(reply.error.code) ? reply.error.code : 'E_INTERNAL', reply.error.message));
    },
    openLane: (to, channel) => {
      if (closed) {
        channel.close();
        return;
      }
      lanes.get(to)?.channel.close();
      const lane: LaneOut = { channel, queue: [] };
      lanes.set(to, lane);
      channel.bufferedAmountLowThreshold = LANE_LOW_WATER;
      channel.addEventListener('bufferedamountlow', () => drain(lane));
      channel.addEventListener('close', () => {
        if (lanes.get(to) !== lane) return;
        lanes.delete(to);
        if (closed) return;
        handCopies(to);
        post({ type: 'lane-closed', tid, to });
      });
    },
    closeLane: (to) => lanes.get(to)?.channel.close(),
    acked: (to, seq) => {
      const entries = unacked.get(to);
      if (!entries) return;
      let done = 0;
      while (done < entries.length && entries[done]!.seq <= seq) unackedBytes -= entries[done++]!.bytes.byteLength;
      if (done === entries.length) unacked.delete(to);
      else entries.splice(0, done);
    },
    flush: () => handCopies(),
    close: () => {
      handCopies();
      closed = true;
      pending.clear();
      mailbox.close();
      for (const lane of lanes.values()) lane.channel.close();
      lanes.clear();
    },
    counters: () => ({ sent: [...seqs].map(([to, seq]) => ({ to, seq })), requests }),
    covered: (to, seq) => log?.covered(to, seq),
    resend: (to, acked = new Map()) => {
      if (closed || !log) return;
      const envelopes = to === undefined ? log.all(acked) : log.for(to, acked.get(to));
      for (let i = 0; i < envelopes.length; i += REPORT_BATCH) post({ type: 'resent', tid, envelopes: envelopes.slice(i, i + REPORT_BATCH) });
    },
    logged: () => log?.all() ?? [],
    ended: () => {
      const left = log?.all() ?? [];
      for (let i = 0; i < left.length; i += REPORT_BATCH) post({ type: 'ended-log', tid, envelopes: left.slice(i, i + REPORT_BATCH) });
    },
  };
}

/** Per receiver, the last seq written and how many were. */
function summarize(written: readonly { to: string; seq: number }[]): { to: string; seq: number; count: number }[] {
  const pairs = new Map<string, { to: string; seq: number; count: number }>();
  for (const { to, seq } of written) {
    const pair = pairs.get(to);
    if (pair) {
      pair.seq = Math.max(pair.seq, seq);
      pair.count += 1;
    } else pairs.set(to, { to, seq, count: 1 });
  }
  return [...pairs.values()];
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
