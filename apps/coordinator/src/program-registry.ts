import { createHash } from 'node:crypto';
import { bundleProgram } from '@webpvm/task-sdk/node';
import type { Store } from './store/store.ts';

/**
 * Programs arrive as source text (JS or TS, maybe importing `@webpvm/task-sdk`) and leave as one
 * self-contained ES module, stored and served under its content hash so hosts can cache it forever.
 */
/** Programs kept in memory, the most recently used; others are read from the store. */
const CACHED = 64;

export class ProgramRegistry {
  private readonly cache = new Map<string, string>();

  constructor(private readonly store: Store) {}

  async register(source: string): Promise<string> {
    const module = await bundleProgram({ source, loader: 'ts' });
    const hash = createHash('sha256').update(module).digest('hex');
    if (!this.cache.has(hash)) await this.store.putProgram(hash, module);
    this.#remember(hash, module);
    return hash;
  }

  async get(hash: string): Promise<string | null> {
    const source = this.cache.get(hash) ?? (await this.store.getProgram(hash));
    if (source !== null) this.#remember(hash, source);
    return source;
  }

  #remember(hash: string, source: string): void {
    this.cache.delete(hash);
    this.cache.set(hash, source);
    if (this.cache.size > CACHED) this.cache.delete(this.cache.keys().next().value!);
  }
}

export const programUrl = (hash: string): string => `/programs/${hash}.js`;
