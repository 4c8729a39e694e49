import { runTaskWorker } from '@webpvm/task-sdk/runtime';

// Task code starts no workers of its own: a nested worker would outlive its task's slot, escape
// freezing and migration, multiply the tab's threads, and run under another policy than this
// one. The constructors go before any program loads; nothing else holds them.
for (const name of ['Worker', 'SharedWorker']) Reflect.deleteProperty(self, name);

// The page's types describe `self` as a Window; in this file it is a DedicatedWorkerGlobalScope.
const scope = self as unknown as { postMessage(message: unknown, transfer?: ArrayBuffer[]): void; addEventListener: typeof self.addEventListener };
runTaskWorker(scope);
