import { runFrame } from './frame.ts';
import { bootTaskWorker } from './task-worker.ts';

// One classic script plays both parts of the sandbox: inline in the frame's document (the
// coordinator serves it so, sandbox-route.ts) it is the frame, which starts each task worker from
// its own text; in such a worker it is the task worker.
if (typeof document === 'undefined') bootTaskWorker();
else runFrame(document.currentScript?.textContent ?? '');
