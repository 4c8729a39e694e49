import type { ErrorCode, ToWorker } from '@webpvm/vm-protocol';

/** What the slot pool needs of a Web Worker; tests give it a fake. */
export interface TaskWorkerHandle {
  /** `transfer` moves objects (a lane's channel) instead of copying them. */
  post(message: ToWorker, transfer?: Transferable[]): void;
  terminate(): void;
}

export interface TaskWorkerListener {
  message(data: unknown): void;
  error(code: ErrorCode, message: string): void;
}

export type SpawnTaskWorker = (listener: TaskWorkerListener) => TaskWorkerHandle;

/**
 * Built apart from the pages (vite.task-worker.config.ts) and served by the coordinator with the
 * Content-Security-Policy task code runs under.
 */
const TASK_WORKER_URL = '/task-worker.js';

export const spawnTaskWorker: SpawnTaskWorker = (listener) => {
  const worker = new Worker(TASK_WORKER_URL, { type: 'module' });
  worker.onmessage = (event) => listener.message(event.data);
  worker.onmessageerror = () => listener.error('E_BAD_FRAME', 'a message from the task worker could not be deserialized');
  worker.onerror = (event) => {
    event.preventDefault();
    listener.error('E_TASK_FAILED', event.message || 'the task worker failed');
  };
  return { post: (message, transfer = []) => worker.postMessage(message, transfer), terminate: () => worker.terminate() };
};
