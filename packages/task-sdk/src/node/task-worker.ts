import { parentPort } from 'node:worker_threads';
import { runTaskWorker } from '../runtime/index.ts';

// The entry of a Node worker_thread: the same runtime as in a browser Web Worker, spoken to through parentPort.
const port = parentPort;
if (!port) throw new Error('task-worker.ts must run in a worker_thread');
runTaskWorker({
  postMessage: (message, transfer) => port.postMessage(message, transfer),
  addEventListener: (_type, listener) => port.on('message', (data: unknown) => listener({ data })),
});
