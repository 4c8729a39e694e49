import { createHash } from 'node:crypto';
import { bundleProgram } from '@webpvm/task-sdk/node';
import type { Store } from './store/store.ts';

/**
 * Programs arrive as source text (JS or TS, maybe importing `@webpvm/task-sdk`) and leave as one
 * self-contained ES module, stored and served under its content hash so hosts can cache it forever.
 */
export class ProgramRegistry {
  private readonly cache = new Map<string, string>();

  constructor(private readonly store: Store) {}

  async register(source: string): Promise<string> {
    const module = await bundleProgram({ source, loader: 'ts' });
    const hash = createHash('sha256').update(module).digest('hex');
    if (!this.cache.has(hash)) {
      await this.store.putProgram(hash, module);
      this.cache.set(hash, module);
    }
    return hash;
  }

  async get(hash: string): Promise<string | null> {
    const cached = this.cache.get(hash);
    if (cached !== undefined) return cached;
    const stored = await this.store.getProgram(hash);
    if (stored !== null) this.cache.set(hash, stored);
    return stored;
  }
}

export const programUrl = (hash: string): string => `/programs/${hash}.js`;
