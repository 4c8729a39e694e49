import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The task sandbox's one script (src/sandbox/sandbox-entry.ts), built after the pages into
 * dist/sandbox.js: a classic script, for the frame inlines it and starts its task workers from
 * its text as blob: workers, which must be classic there. The coordinator serves it inside the
 * frame's document, with the policy task code runs under (apps/coordinator/src/sandbox-route.ts).
 */
export default defineConfig({
  build: {
    // The pages' build has just filled dist.
    emptyOutDir: false,
    copyPublicDir: false,
    rolldownOptions: {
      input: fileURLToPath(new URL('src/sandbox/sandbox-entry.ts', import.meta.url)),
      // One file that imports nothing: the frame and its workers load no script but it and the program.
      output: { entryFileNames: 'sandbox.js', format: 'iife', codeSplitting: false },
    },
  },
});
