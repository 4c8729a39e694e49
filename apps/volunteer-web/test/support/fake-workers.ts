import type { ToWorker } from '@webpvm/vm-protocol';
import type { SpawnTaskWorker, TaskWorkerListener } from '../../src/host/task-worker-handle.ts';

export interface FakeWorker {
  listener: TaskWorkerListener;
  received: ToWorker[];
  terminated: boolean;
  /** What the task code inside would post. */
  emit(data: unknown): void;
}

export function fakeWorkers(): { spawn: SpawnTaskWorker; workers: FakeWorker[] } {
  const workers: FakeWorker[] = [];
  const spawn: SpawnTaskWorker = (listener) => {
    const worker: FakeWorker = {
      listener,
      received: [],
      terminated: false,
      emit: (data) => listener.message(structuredClone(data)),
    };
    workers.push(worker);
    return {
      post: (message) => worker.received.push(structuredClone(message)),
      terminate: () => {
        worker.terminated = true;
      },
    };
  };
  return { spawn, workers };
}

/** The tid the worker was last asked to run. */
export const currentTid = (worker: FakeWorker): string => {
  const last = worker.received.findLast((m) => m.type === 'start');
  if (!last) throw new Error('the worker was never started');
  return last.task.tid;
};
