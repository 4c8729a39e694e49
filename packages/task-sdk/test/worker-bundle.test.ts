import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const sdk = fileURLToPath(new URL('../', import.meta.url));

describe('the task worker bundle', () => {
  // It runs beside untrusted code: what it need not parse, it should not carry.
  it('carries no REST or host-socket schemas of vm-protocol', async () => {
    const { metafile } = await build({
      entryPoints: ['src/runtime/index.ts', 'src/index.ts'],
      absWorkingDir: sdk,
      bundle: true,
      write: false,
      format: 'esm',
      outdir: 'out',
      metafile: true,
      logLevel: 'silent',
    });
    const protocol = Object.keys(metafile.inputs)
      .map((input) => /vm-protocol\/src\/(.+)$/.exec(input)?.[1])
      .filter((file) => file !== undefined);
    expect(protocol).toContain('worker.ts');
    expect(protocol).not.toContain('api.ts');
    expect(protocol).not.toContain('host.ts');
  });
});
