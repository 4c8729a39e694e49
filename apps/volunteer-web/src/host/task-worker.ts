import { runTaskWorker } from '@webpvm/task-sdk/runtime';

runTaskWorker(self);
