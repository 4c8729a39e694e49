import { isBuiltin } from 'node:module';
import { build, type BuildOptions, type Message, type Plugin } from 'esbuild';
import { LIMITS, WebpvmError } from '@webpvm/vm-protocol';

/** A program on disk (it may import its own files and packages) or as text (one module, as sent over HTTP). */
export type ProgramSource = { path: string } | { source: string; loader?: 'ts' | 'js' };

const SDK = '@webpvm/task-sdk';
const SDK_SHIM_NAMESPACE = 'webpvm-sdk-shim';
/** All of the SDK a program needs at run time: `defineTask` is a typed identity, the rest are types. */
const SDK_SHIM = 'export const defineTask = (fn) => fn;\n';
const OUTFILE = 'program.js';

/**
 * Bundles a program into one self-contained ES module that a worker can import with nothing
 * else loaded. Throws `E_BAD_PROGRAM` with esbuild's first error when it cannot.
 */
export async function bundleProgram(source: ProgramSource): Promise<string> {
  const fromText = 'source' in source;
  const entry: BuildOptions = fromText ? textEntry(source.source, source.loader ?? 'ts') : { entryPoints: [source.path] };

  let result;
  try {
    result = await build({
      ...entry,
      bundle: true,
      write: false,
      metafile: true,
      format: 'esm',
      target: 'es2022',
      platform: 'neutral',
      // The neutral platform reads no package.json entry field by default; programs may import packages.
      mainFields: ['module', 'main'],
      outfile: OUTFILE,
      logLevel: 'silent',
      plugins: [programImports(!fromText)],
    });
  } catch (error) {
    throw new WebpvmError('E_BAD_PROGRAM', describeFailure(error));
  }
  const [output] = result.outputFiles;
  const meta = Object.values(result.metafile.outputs)[0];
  if (!output || !meta) throw new WebpvmError('E_BAD_PROGRAM', 'the program bundled to nothing');
  if (output.contents.byteLength > LIMITS.programBytes) {
    throw new WebpvmError(
      'E_BAD_PROGRAM',
      `the bundled program is ${output.contents.byteLength} bytes, over the limit of ${LIMITS.programBytes}`,
    );
  }
  if (!meta.exports.includes('default')) throw new WebpvmError('E_BAD_PROGRAM', 'the program has no default export');
  return output.text;
}

function textEntry(contents: string, loader: 'ts' | 'js'): BuildOptions {
  return {
    stdin: { contents, loader, sourcefile: `program.${loader}` },
    // Text has no directory: keep the coordinator's own tsconfig out of its compilation.
    tsconfigRaw: {},
  };
}

/** Maps the SDK to its shim and refuses what a program run in a browser cannot import. */
function programImports(allowFiles: boolean): Plugin {
  return {
    name: 'webpvm-program-imports',
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === 'entry-point') return undefined;
        if (args.path === SDK) return { path: SDK, namespace: SDK_SHIM_NAMESPACE };
        if (isBuiltin(args.path)) {
          return { errors: [{ text: `"${args.path}" is a Node built-in module: programs run in browsers and cannot import it` }] };
        }
        if (!allowFiles) {
          return {
            errors: [
              {
                text: `import "${args.path}" is refused: a program sent as text is one module that may import only "${SDK}" (bundle it with the webpvm CLI)`,
              },
            ],
          };
        }
        return undefined;
      });
      build.onLoad({ filter: /.*/, namespace: SDK_SHIM_NAMESPACE }, () => ({ contents: SDK_SHIM, loader: 'js' }));
    },
  };
}

function describeFailure(error: unknown): string {
  const errors = (error as { errors?: Message[] } | null)?.errors;
  const first = errors?.[0];
  if (!errors || !first) return error instanceof Error ? error.message : String(error);
  const where = first.location ? `${first.location.file}:${first.location.line}:${first.location.column + 1}: ` : '';
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length > 2 ? 's' : ''})` : '';
  return `${where}${first.text}${more}`;
}
