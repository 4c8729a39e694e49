import { createStore, del, delMany, get, keys, set, setMany, type UseStore } from 'idb-keyval';

/** The few IndexedDB operations the host needs; tests pass an in-memory Map instead. */
export interface KeyValueStore {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
  /** Several writes in one IndexedDB transaction. */
  setMany(entries: [string, unknown][]): Promise<void>;
  del(key: string): Promise<void>;
  /** Several deletes in one IndexedDB transaction. */
  delMany(keys: string[]): Promise<void>;
  keys(): Promise<string[]>;
}

export function idbStore(dbName = 'webpvm-host', storeName = 'state'): KeyValueStore {
  const store: UseStore = createStore(dbName, storeName);
  return {
    get: (key) => get(key, store),
    set: (key, value) => set(key, value, store),
    setMany: (entries) => setMany(entries, store),
    del: (key) => del(key, store),
    delMany: (keys) => delMany(keys, store),
    keys: async () => (await keys(store)).filter((k): k is string => typeof k === 'string'),
  };
}
