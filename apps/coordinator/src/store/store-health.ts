import fs from 'node:fs';
import Database from 'better-sqlite3';
import type { StoreHealth } from './store.ts';

/*
 * What says the store is failing: writes that failed, SQLite errors that mean the file cannot be
 * used, and a database file removed or replaced under the coordinator.
 */

/**
 * Writes that failed and have not succeeded since, by lane. A lane whose writes are kept and
 * retried until they succeed (the write-behind's batches, the event log's) is failing while its
 * latest attempt failed, whatever else succeeds meanwhile: on a full file a small in-place update
 * may succeed while the batch that adds rows cannot. The writes nobody retries (a token, a program,
 * a deletion) and failed reads share one lane, cleared by the next of those writes that succeeds.
 */
export class FailingWrites {
  readonly #failing = new Map<string, { since: number; reason: string }>();

  constructor(private readonly now: () => number = Date.now) {}

  failed(lane: string, reason: string): void {
    this.#failing.set(lane, { since: this.#failing.get(lane)?.since ?? this.now(), reason });
  }

  succeeded(lane: string): void {
    this.#failing.delete(lane);
  }

  failing(lane: string): boolean {
    return this.#failing.has(lane);
  }

  health(): StoreHealth {
    let health: StoreHealth = { ok: true };
    for (const { since, reason } of this.#failing.values()) {
      if (health.ok || since < health.since) health = { ok: false, since, reason };
    }
    return health;
  }
}

/**
 * SQLite's primary result codes (https://sqlite.org/rescode.html) that say the file cannot be used
 * now, whatever was asked of it: full (the disk, or `max_page_count`), an I/O error, made
 * read-only, locked by another process past the busy timeout, gone or damaged. The others (a
 * constraint, a value too big, an SQL error) are the request's own fault or a bug's.
 */
const UNAVAILABLE = new Set([
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'SQLITE_READONLY',
  'SQLITE_CANTOPEN',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_PERM',
  'SQLITE_NOMEM',
  'SQLITE_CORRUPT',
  'SQLITE_NOTADB',
  'SQLITE_PROTOCOL',
]);

/** Why the store failed, when the error says the store cannot be used; null when it does not. */
export function unavailable(error: unknown): string | null {
  if (error instanceof FileGone) return error.message;
  if (!(error instanceof Database.SqliteError)) return null;
  const primary = error.code.split('_', 2).join('_');
  return UNAVAILABLE.has(primary) ? `${error.code}: ${error.message}` : null;
}

/** The data file is not where it was opened: writes to it would be lost. */
class FileGone extends Error {}

/**
 * The database file as it was opened. In WAL mode SQLite goes on writing to a file removed (or
 * replaced) under it: the commits succeed, and are lost when the coordinator stops. A stat per
 * write (microseconds, against a commit's tenth of a millisecond and more) turns that into a
 * failure that `/healthz` shows.
 */
export class OpenedFile {
  readonly #file: string;
  readonly #dev: number;
  readonly #ino: number;

  constructor(file: string) {
    const { dev, ino } = fs.statSync(file);
    this.#file = file;
    this.#dev = dev;
    this.#ino = ino;
  }

  /** Throws when the file is no longer the one opened. */
  check(): void {
    let now: fs.Stats | undefined;
    try {
      now = fs.statSync(this.#file, { throwIfNoEntry: false });
    } catch (error) {
      throw new FileGone(`cannot look at ${this.#file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    if (!now) throw new FileGone(`${this.#file} was removed since it was opened`);
    if (now.dev !== this.#dev || now.ino !== this.#ino) throw new FileGone(`${this.#file} was replaced since it was opened`);
  }
}
