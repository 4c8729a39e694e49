import { WebpvmError } from '@webpvm/vm-protocol';
import { type Agree, agreement } from './result-agreement.ts';
import { ResultValidator } from './result-validator.ts';

/** An export of `validate` in a bundled module: `export function validate`, `export { …validate… }`. */
const EXPORTS_VALIDATE = /export\s+(async\s+)?function\s*\*?\s*validate\b|export\s+(const|let|var)\s+validate\b|export\s*\{[^}]*\bvalidate\b[^}]*\}/;

/**
 * The programs' `validate(a, b)` exports, loaded once per program (by content hash) into a QuickJS
 * engine of its own (result-validator.ts), for the replicated jobs that run them. A program that
 * exports none compares by its job's tolerance or canonical JSON.
 */
export class Validators {
  readonly #loaded = new Map<string, ResultValidator | null>();
  /** Unfinished jobs per program: a validate no job needs is disposed (each holds up to 32 MiB). */
  readonly #users = new Map<string, number>();

  /**
   * Loads the program's validate, if it exports one, before a replicated job of it is submitted
   * or restored. Throws E_BAD_PROGRAM when it exports one that cannot be loaded.
   */
  async prepare(hash: string, module: string): Promise<void> {
    if (this.#loaded.has(hash)) return;
    let validator: ResultValidator | null = null;
    if (EXPORTS_VALIDATE.test(module)) {
      try {
        validator = await ResultValidator.load(module);
      } catch (error) {
        throw new WebpvmError('E_BAD_PROGRAM', `the program's validate cannot be loaded: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    this.#loaded.set(hash, validator);
  }

  /** How replicas of a job of this program agree: `prepare` came first. The job holds the validate until `release`. */
  agreement(hash: string, tolerance: number | null): Agree {
    this.#users.set(hash, (this.#users.get(hash) ?? 0) + 1);
    return agreement(tolerance, this.#loaded.get(hash) ?? null);
  }

  /** A job of this program finished: once none is left, its validate goes. */
  release(hash: string): void {
    const users = (this.#users.get(hash) ?? 1) - 1;
    if (users > 0) return void this.#users.set(hash, users);
    this.#users.delete(hash);
    this.#loaded.get(hash)?.dispose();
    this.#loaded.delete(hash);
  }

  /** Programs whose validate is loaded now. */
  get size(): number {
    return [...this.#loaded.values()].filter((v) => v !== null).length;
  }
}
