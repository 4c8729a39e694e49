import { expect } from 'vitest';
import { FromWorker, encodeMessage, unsealMessage, type ErrorBody, type TaskAssignment, type TaskMessage, type ToWorker, type TaskOp } from '@webpvm/vm-protocol';
import type { TaskContext } from '../../src/ctx.ts';
import { runTaskWorker, type TaskWorkerOptions } from '../../src/runtime/index.ts';

type Done = Extract<FromWorker, { type: 'done' }>;
export type Answer = { ok: true; value: unknown } | { ok: false; error: ErrorBody };

/**
 * A runtime behind a fake scope: what it posts is recorded and checked against the protocol.
 * `answer`, when given, replies to the task's requests the way a host would.
 */
export function fakeWorker(answer?: (op: TaskOp, tid: string) => Answer, options: TaskWorkerOptions = {}) {
  const posted: FromWorker[] = [];
  /** Messages posted as the worker's last (`frozen`), after which it may end. */
  const last: FromWorker[] = [];
  const transfers = new WeakMap<FromWorker, readonly ArrayBuffer[]>();
  const waiting = new Map<string, (done: Done) => void>();
  let listener: ((event: { data: unknown }) => void) | undefined;
  const send = (data: unknown): void => listener!({ data });
  const receive = (message: unknown, transfer: ArrayBuffer[] = []): FromWorker => {
    const parsed = FromWorker.parse(message);
    posted.push(parsed);
    transfers.set(parsed, transfer);
    if (parsed.type === 'done') waiting.get(parsed.tid)?.(parsed);
    if (parsed.type === 'request' && answer) {
      const { tid, requestId, op } = parsed;
      queueMicrotask(() => send({ type: 'reply', tid, requestId, ...answer(op, tid) }));
    }
    return parsed;
  };
  runTaskWorker({
    postMessage: (message, transfer) => void receive(message, transfer),
    addEventListener: (_type, l) => {
      listener = l;
    },
    frozen: (message, transfer) => void last.push(receive(message, transfer)),
  }, options);
  const of = <T extends FromWorker['type']>(type: T, tid = 'job1.0'): Extract<FromWorker, { type: T }>[] =>
    posted.filter((m): m is Extract<FromWorker, { type: T }> => m.type === type && 'tid' in m && m.tid === tid);
  return {
    posted,
    last,
    send,
    run(
      task: Partial<TaskAssignment> & { programUrl: string },
      checkpointIntervalMs = 0,
      extras: Partial<Omit<Extract<ToWorker, { type: 'start' }>, 'type' | 'task'>> = {},
    ): Promise<Done> {
      const full: TaskAssignment = {
        tid: 'job1.0',
        attempt: 1,
        jobId: 'job1',
        parent: null,
        name: null,
        input: null,
        resume: null,
        seed: 1,
        timeoutMs: null,
        ...task,
      };
      const done = new Promise<Done>((resolve) => waiting.set(full.tid, resolve));
      send({ type: 'start', task: full, checkpointIntervalMs, ...extras });
      return done;
    },
    deliver(tid: string, ...messages: Omit<TaskMessage, 'to'>[]): void {
      send({ type: 'deliver', tid, envelopes: messages.map((m) => encodeMessage({ ...m, to: tid })) });
    },
    of,
    /** What a task handed the host to send, as its receivers will read it. */
    sent(tid = 'job1.0'): TaskMessage[] {
      return of('send', tid).map(({ envelope }) => {
        const message = unsealMessage(envelope);
        expect(message, 'a send carries a message envelope').not.toBeNull();
        return message!;
      });
    },
    /** The buffers `message` moved out of the worker as it was posted. */
    transferOf(message: FromWorker): readonly ArrayBuffer[] | undefined {
      return transfers.get(message);
    },
  };
}

/** A program as a data: URL, short enough for a TaskAssignment. */
export function program(code: string): string {
  const url = `data:text/javascript,${encodeURIComponent(code)}`;
  expect(url.length).toBeLessThanOrEqual(512);
  return url;
}

/** A program whose default export runs the test's `main` and whose export `helper` runs its `helper` (see hookTasks). */
export const HOOKED_PROGRAM = program(
  'export default (c, i) => globalThis.testTasks.main(c, i); export const helper = (c, i) => globalThis.testTasks.helper(c, i);',
);

type Hook = (ctx: TaskContext, input: unknown) => unknown;

export function hookTasks(tasks: { main?: Hook; helper?: Hook }): void {
  (globalThis as { testTasks?: unknown }).testTasks = tasks;
}

/** Lets pending promise callbacks and queued replies run. */
export const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));
