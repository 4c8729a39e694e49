import { runTaskWorker } from '@webpvm/task-sdk/runtime';

// The page's types describe `self` as a Window; in this file it is a DedicatedWorkerGlobalScope.
const scope = self as unknown as { postMessage(message: unknown, transfer?: ArrayBuffer[]): void; addEventListener: typeof self.addEventListener };
runTaskWorker(scope);
