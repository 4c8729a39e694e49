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
  server: {
    // As the coordinator serves the built app: the host page shares SharedArrayBuffers with its workers.
    headers: {
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'cross-origin-resource-policy': 'same-origin',
    },
    // The task sandbox is the coordinator's to serve, with its policy (vite.sandbox.config.ts builds its
    // script), and so are the programs it runs and the relay lanes its workers open. The policy names the
    // host in the request, which must stay this server's: the workers open their lanes here.
    proxy: {
      '/api': coordinator,
      '/ws': { target: coordinator, ws: true },
      '/sandbox.html': { target: coordinator, changeOrigin: false },
      '/programs': coordinator,
      '/lane': { target: coordinator, ws: true },
    },
  },
});
