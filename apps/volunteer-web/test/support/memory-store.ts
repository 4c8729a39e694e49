import type { KeyValueStore } from '../../src/host/kv-store.ts';

/** IndexedDB stand-in: values are structured-cloned like IndexedDB would. */
export function memoryStore(initial: Record<string, unknown> = {}): KeyValueStore & { data: Map<string, unknown> } {
  const data = new Map<string, unknown>(Object.entries(initial));
  return {
    data,
    get: async <T>(key: string) => structuredClone(data.get(key)) as T | undefined,
    set: async (key, value) => void data.set(key, structuredClone(value)),
    write: async (puts, dels) => {
      for (const [key, value] of puts) data.set(key, structuredClone(value));
      for (const key of dels) data.delete(key);
    },
    del: async (key) => void data.delete(key),
    delMany: async (keys) => {
      for (const key of keys) data.delete(key);
    },
    keys: async () => [...data.keys()],
  };
}
