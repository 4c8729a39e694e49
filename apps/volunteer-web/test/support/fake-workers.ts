import { MAX_HANDED, type LaneGift, type ToWorker, unsealMessage } from '@webpvm/vm-protocol';
import type { SafePointCells, SpawnTaskWorker, TaskWorkerListener, WorkerJob } from '../../src/host/task-worker-handle.ts';

export interface FakeWorker {
  job: WorkerJob;
  listener: TaskWorkerListener;
  /** Its safe-point cells, when the fakes share them. */
  cells: Int32Array | null;
  received: ToWorker[];
  /** Lanes its frame was asked to hand it: each is made at once. */
  lanes: { link: number; stream: number; gift: LaneGift }[];
  terminated: boolean;
  /** What the task code inside would post. */
  emit(data: unknown): void;
}

/** Cells over memory the test can read, as a sandbox frame's are over its SharedArrayBuffer. */
export function sharedCells(cells: Int32Array): SafePointCells {
  return {
    store: (cell, bits) => void Atomics.store(cells, cell, bits),
    or: (cell, bits) => void Atomics.or(cells, cell, bits),
  };
}

/**
 * Workers that record what they are posted. Like the real runtime they number what they are
 * delivered per task (a resumed mailbox first) and report it back (worker.ts `delivered`).
 * With `shared`, each has safe-point cells, as in a cross-origin isolated page.
 */
export function fakeWorkers(shared = false): { spawn: SpawnTaskWorker; workers: FakeWorker[] } {
  const workers: FakeWorker[] = [];
  const spawn: SpawnTaskWorker = (job, listener) => {
    const received = new Map<string, number>();
    const report = (message: ToWorker): void => {
      for (const start of startsOf(message)) received.set(start.task.tid, start.mailbox?.length ?? 0);
      if (message.type !== 'deliver') return;
      let n = received.get(message.tid) ?? 0;
      const entries = message.envelopes.map((envelope) => {
        const { from, seq } = unsealMessage(envelope)!;
        return { n: ++n, from, seq };
      });
      received.set(message.tid, n);
      queueMicrotask(() => listener.message({ type: 'delivered', tid: message.tid, entries }));
    };
    const cells = shared ? new Int32Array(new SharedArrayBuffer(4 * MAX_HANDED)) : null;
    const worker: FakeWorker = {
      job,
      listener,
      cells,
      received: [],
      lanes: [],
      terminated: false,
      emit: (data) => listener.message(structuredClone(data)),
    };
    workers.push(worker);
    return {
      post: (message) => {
        worker.received.push(structuredClone(message));
        report(message);
      },
      lane: (link, stream, gift, made) => {
        worker.lanes.push({ link, stream, gift });
        made(true);
      },
      terminate: () => {
        worker.terminated = true;
      },
      cells: cells && sharedCells(cells),
    };
  };
  return { spawn, workers };
}

type Start = Extract<ToWorker, { type: 'start' }>;

/** The tasks a message hands a worker: one `start`, or those of `starts`. */
export const startsOf = (message: ToWorker): Start[] => (message.type === 'start' ? [message] : message.type === 'starts' ? message.tasks : []);

/** The tid the worker was last asked to run. */
export const currentTid = (worker: FakeWorker): string => {
  const last = worker.received.flatMap(startsOf).at(-1);
  if (!last) throw new Error('the worker was never started');
  return last.task.tid;
};
