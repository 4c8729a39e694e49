import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const coordinator = process.env.WEBPVM_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react()],
  build: {
    rolldownOptions: {
      input: { host: here('index.html'), dashboard: here('dashboard/index.html') },
      // Both pages share React and one stylesheet; name them for what they are.
      output: {
        chunkFileNames: 'assets/shared-[hash].js',
        assetFileNames: (asset) => (asset.names.some((n) => n.endsWith('.css')) ? 'assets/styles-[hash][extname]' : 'assets/[name]-[hash][extname]'),
      },
    },
  },
  worker: {
    format: 'es',
    rolldownOptions: {
      // The coordinator serves /assets/task-worker-*.js with a CSP that forbids network access.
      output: {
        entryFileNames: 'assets/task-worker-[hash].js',
        chunkFileNames: 'assets/task-worker-[name]-[hash].js',
      },
    },
  },
  server: {
    // As the coordinator serves the built app: the host page shares SharedArrayBuffers with its workers.
    headers: {
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'cross-origin-resource-policy': 'same-origin',
    },
    proxy: {
      '/api': coordinator,
      '/ws': { target: coordinator, ws: true },
    },
  },
});
