import { FromWorker, LIMITS, decodeEnvelope, describeIssues, parseTid, readSealed, type ErrorBody, type SealedMessage, type TaskAssignment } from '@webpvm/vm-protocol';
import type { DeliveryReport } from './messaging/inboxes.ts';

/*
 * What a task's worker says, checked before the page acts on it (slot-pool.ts). Task code is
 * untrusted and runs in the worker beside the runtime: anything malformed, or a message that is
 * not the task's own to a task of its job, is an error that fails the task.
 */

/** A report that passed its checks, or the error its task fails with. */
export type Checked<T> = { ok: true; value: T } | { ok: false; error: ErrorBody };

type Reported<T extends FromWorker['type']> = Extract<FromWorker, { type: T }>;

/** A message from the worker, parsed. */
export function parseWorkerReport(data: unknown): Checked<FromWorker> {
  const parsed = FromWorker.safeParse(data);
  if (parsed.success) return { ok: true, value: parsed.data };
  const message = `bad message from the task worker: ${describeIssues(parsed.error)}`.slice(0, LIMITS.logLineChars);
  return { ok: false, error: { code: 'E_BAD_FRAME', message } };
}

/** A message `task` sends through the page: numbered, from itself, to a task of its job. */
export function checkSend(envelope: Uint8Array, task: TaskAssignment): Checked<SealedMessage> {
  const { tid } = task;
  const read = readSealed(envelope);
  if (!read.ok) return { ok: false, error: { code: 'E_BAD_FRAME', message: `${tid} sent what is not a message: ${read.message}` } };
  const { from, to } = read.message;
  if (from !== tid || parseTid(to).jobId !== task.jobId) {
    return { ok: false, error: { code: 'E_FORBIDDEN', message: `${tid} may not send as ${from} to ${to}` } };
  }
  return { ok: true, value: read.message };
}

/** What `task` says it wrote on lanes: to tasks of its job only. */
export function checkLaneWrote(pairs: Reported<'lane-wrote'>['pairs'], task: TaskAssignment): Checked<Reported<'lane-wrote'>['pairs']> {
  const stranger = pairs.find(({ to }) => parseTid(to).jobId !== task.jobId);
  if (stranger) return { ok: false, error: { code: 'E_FORBIDDEN', message: `${task.tid} says it wrote on a lane to ${stranger.to}, a task of another job` } };
  return { ok: true, value: pairs };
}

/** A task `task` names as one it sent to (its sender log is full for it): one of its job. */
export function checkReceiver(to: string, task: TaskAssignment): Checked<string> {
  if (parseTid(to).jobId === task.jobId) return { ok: true, value: to };
  return { ok: false, error: { code: 'E_FORBIDDEN', message: `${task.tid} says its sender log is full for ${to}, a task of another job` } };
}

/**
 * The messages `task` wrote on its lanes, in order, up to the first envelope that is not a message
 * of its own to a task of its job: `error` then says why the task fails, after those before it.
 */
export function checkLaneSent(
  envelopes: Reported<'lane-sent'>['envelopes'],
  task: TaskAssignment,
): { sent: { message: Pick<SealedMessage, 'from' | 'to' | 'seq'>; bytes: Uint8Array }[]; error: ErrorBody | null } {
  const sent: { message: Pick<SealedMessage, 'from' | 'to' | 'seq'>; bytes: Uint8Array }[] = [];
  for (const bytes of envelopes) {
    const decoded = decodeEnvelope(bytes);
    const header = decoded.ok ? decoded.value.header : null;
    if (header?.type !== 'msg' || header.from !== task.tid || parseTid(header.to).jobId !== task.jobId) {
      return { sent, error: { code: 'E_FORBIDDEN', message: `${task.tid} wrote on a lane what is not a message of its own to a task of its job` } };
    }
    sent.push({ message: header, bytes });
  }
  return { sent, error: null };
}

/** What the worker of `tid` handed its task; each message that came on a lane must be one of its job, as reported. */
export function checkDelivered(entries: Reported<'delivered'>['entries'], tid: string): Checked<DeliveryReport[]> {
  const jobId = parseTid(tid).jobId;
  const checked: DeliveryReport[] = [];
  for (const { n, from, seq, lane } of entries) {
    if (lane && (seq < 1 || parseTid(from).jobId !== jobId)) {
      return { ok: false, error: { code: 'E_BAD_FRAME', message: `${tid} reported a lane delivery that is not a message of its job to it` } };
    }
    checked.push({ n, from, seq, ...(lane ? { lane } : {}) });
  }
  return { ok: true, value: checked };
}
