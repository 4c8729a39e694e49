import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PostgresServer } from '@webpvm/local-servers';
import { PostgresStore } from '../../src/store/postgres-store.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';

/** A store just made, empty, and how to open what it wrote again (a restarted coordinator). */
export interface OpenedStore {
  store: Store;
  reopen(): Promise<Store>;
}

export interface StoreAdapter {
  name: string;
  open(): Promise<OpenedStore>;
  stop(): Promise<void>;
}

/** SQLite in a fresh file per store. */
function sqlite(): StoreAdapter {
  const dirs: string[] = [];
  return {
    name: 'SQLite',
    async open() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-store-'));
      dirs.push(dir);
      const file = path.join(dir, 'nested', 'db.sqlite');
      return { store: new SqliteStore(file), reopen: async () => new SqliteStore(file) };
    },
    async stop() {
      for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One real PostgreSQL server for the file, started on first use, and a fresh database per store. */
function postgres(): StoreAdapter {
  let server: Promise<PostgresServer> | null = null;
  return {
    name: 'PostgreSQL',
    async open() {
      server ??= PostgresServer.start({ durable: false });
      const url = (await server).createDatabase();
      return { store: await PostgresStore.open(url), reopen: () => PostgresStore.open(url) };
    },
    async stop() {
      if (server) await (await server).stop();
      server = null;
    },
  };
}

export const storeAdapters = (): StoreAdapter[] => [sqlite(), postgres()];
