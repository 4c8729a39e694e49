import fs from 'node:fs';
import Database from 'better-sqlite3';

/*
 * What says the SQLite store is failing: SQLite errors that mean the file cannot be used, and a
 * database file removed or replaced under the coordinator (postgres-health.ts for PostgreSQL).
 */

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
export function unavailableInSqlite(error: unknown): string | null {
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
