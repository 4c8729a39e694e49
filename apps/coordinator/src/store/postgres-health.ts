/*
 * Which PostgreSQL errors say the store cannot be used now, whatever was asked of it, rather than
 * that a request was at fault (a constraint, a value too large) or a bug (an SQL error).
 */

/**
 * SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html): 08
 * connection exception, 53 insufficient resources (disk full, out of memory, too many
 * connections), 57 operator intervention (shut down, cannot connect now), 58 system error (I/O).
 */
const UNAVAILABLE_CLASSES = new Set(['08', '53', '57', '58']);
/** A read-only transaction (a standby), and data or an index found corrupted. */
const UNAVAILABLE_CODES = new Set(['25006', 'XX001', 'XX002']);
/** What Node says when the server cannot be reached or the connection dies. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** Why the store failed, when `error` says PostgreSQL cannot be used; null when it does not. */
export function unavailableInPostgres(error: unknown): string | null {
  if (!(error instanceof Error)) return null;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code)) return `${code}: ${error.message}`;
    if (/^[0-9A-Z]{5}$/.test(code) && (UNAVAILABLE_CLASSES.has(code.slice(0, 2)) || UNAVAILABLE_CODES.has(code))) return `${code}: ${error.message}`;
    return null;
  }
  // node-postgres's own errors carry no code: a connection that ended, a query or connect timeout.
  if (/Connection terminated|timeout exceeded|Client has encountered a connection error|Cannot use a pool after calling end/i.test(error.message)) return error.message;
  return null;
}
