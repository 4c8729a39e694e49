import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The task worker, built after the pages into dist/task-worker.js: a fixed path, which the
 * coordinator serves with the policy task code runs under (apps/coordinator/src/task-worker-route.ts).
 */
export default defineConfig({
  build: {
    // The pages' build has just filled dist.
    emptyOutDir: false,
    copyPublicDir: false,
    rolldownOptions: {
      input: fileURLToPath(new URL('src/host/task-worker.ts', import.meta.url)),
      // One file: the worker imports nothing at run time but the programs it runs.
      output: { entryFileNames: 'task-worker.js', codeSplitting: false },
    },
  },
});
