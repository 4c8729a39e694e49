import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebpvmError } from '@webpvm/vm-protocol';
import { LEASE_FLOOR_MS } from './scheduler/lease-deadlines.ts';

export interface CoordinatorConfig {
  port: number;
  host: string;
  /** PEM certificate chain and key (WEBPVM_TLS_CERT, WEBPVM_TLS_KEY): https and wss on the same port; null for plain http. */
  tls: { cert: string; key: string } | null;
  dataDir: string;
  /** PostgreSQL (DATABASE_URL, postgres://…) instead of the SQLite file under `dataDir`; null for SQLite. */
  databaseUrl: string | null;
  /** NATS (NATS_URL, nats://…), where coordinators on one database forward changes to each other; null: none. */
  natsUrl: string | null;
  /**
   * This coordinator's URL as pages and other coordinators reach it (WEBPVM_PUBLIC_URL); null:
   * derived from where it listens. On PostgreSQL it names the coordinator's job leases, so a
   * coordinator restarted with the same one takes its jobs back at once (docs/cluster.md).
   */
  publicUrl: string | null;
  /** On PostgreSQL: how long a coordinator's hold on a job lasts unless renewed (WEBPVM_JOB_LEASE_MS). */
  jobLeaseMs: number;
  adminToken: string | null;
  /** Built volunteer-web (host page + dashboard), served at `/`. */
  webRoot: string;
  heartbeatMs: number;
  /** A host silent for this long is gone: its tasks are reissued. */
  hostTimeoutMs: number;
  /** After a restart, how long hosts get to reconnect and reclaim the tasks they were running. */
  reconnectGraceMs: number;
  /** The shortest lease of a bag task whose job sets no taskTimeoutMs (job-book.ts). */
  leaseFloorMs: number;
  /** Host connections (`/ws`) one network address may hold at once. */
  hostsPerAddress: number;
  /** A proxy in front passes each client's address in X-Forwarded-For (WEBPVM_TRUST_PROXY=1). */
  trustProxy: boolean;
  /** Bytes one host may send per second, its socket and relay lanes together. */
  hostBytesPerSecond: number;
  /** Bytes the hosts of one job may relay per second, all together. */
  jobBytesPerSecond: number;
  /** Finished jobs' rows are deleted this many days after they finished; null keeps them. */
  retentionDays: number | null;
  checkpointIntervalMs: number;
  /** SQLite's `synchronous` (WEBPVM_SQLITE_SYNCHRONOUS): `full` keeps what was acknowledged through a power loss (sqlite-store.ts). */
  sqliteSynchronous: 'full' | 'normal';
  /** STUN/TURN servers handed to hosts for their data channels (RTCIceServer objects). */
  iceServers: Record<string, unknown>[];
  /** `relay`: hosts' data channels go through TURN only (WEBPVM_ICE_TRANSPORT_POLICY). */
  iceTransportPolicy: 'all' | 'relay';
  logLevel: string;
}

const defaultWebRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../volunteer-web/dist');

function intFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new WebpvmError('E_BAD_REQUEST', `${name} must be a non-negative integer, got "${raw}"`);
  return value;
}

/** Both PEM files, read now, so that a wrong path stops the start with a clear message. */
function tlsFrom(env: NodeJS.ProcessEnv): { cert: string; key: string } | null {
  const [certFile, keyFile] = [env.WEBPVM_TLS_CERT, env.WEBPVM_TLS_KEY];
  if (!certFile && !keyFile) return null;
  if (!certFile || !keyFile) throw new WebpvmError('E_BAD_REQUEST', 'WEBPVM_TLS_CERT and WEBPVM_TLS_KEY go together: a certificate chain and its key, both PEM files');
  const read = (name: string, file: string) => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (error) {
      throw new WebpvmError('E_BAD_REQUEST', `${name}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    }
  };
  return { cert: read('WEBPVM_TLS_CERT', certFile), key: read('WEBPVM_TLS_KEY', keyFile) };
}

const LOOPBACK = /^(?:127(?:\.\d{1,3}){3}|::1|localhost)$/;

/**
 * Host tokens, volunteers' secrets and task messages cross this port: on an address other hosts
 * can reach, plain http gives them to anyone on the way. That takes TLS (WEBPVM_TLS_CERT/KEY), or
 * a TLS proxy in front and an explicit WEBPVM_ALLOW_PLAIN_HTTP=1.
 */
function hostFrom(env: NodeJS.ProcessEnv): string {
  const host = env.HOST || '127.0.0.1';
  const tls = Boolean(env.WEBPVM_TLS_CERT || env.WEBPVM_TLS_KEY);
  if (!LOOPBACK.test(host) && !tls && env.WEBPVM_ALLOW_PLAIN_HTTP !== '1') {
    throw new WebpvmError(
      'E_BAD_REQUEST',
      `listening on ${host} without TLS would send tokens and task data in the clear: set WEBPVM_TLS_CERT and WEBPVM_TLS_KEY, or put a TLS proxy in front and set WEBPVM_ALLOW_PLAIN_HTTP=1`,
    );
  }
  return host;
}

function iceTransportPolicyFrom(raw: string | undefined): 'all' | 'relay' {
  if (raw === undefined || raw === '' || raw === 'all' || raw === 'relay') return raw === 'relay' ? 'relay' : 'all';
  throw new WebpvmError('E_BAD_REQUEST', `WEBPVM_ICE_TRANSPORT_POLICY is "all" or "relay", not "${raw}"`);
}

function synchronousFrom(raw: string | undefined): 'full' | 'normal' {
  if (raw === undefined || raw === '' || raw === 'full' || raw === 'normal') return raw === 'normal' ? 'normal' : 'full';
  throw new WebpvmError('E_BAD_REQUEST', `WEBPVM_SQLITE_SYNCHRONOUS is "full" or "normal", not "${raw}"`);
}

function iceServersFrom(raw: string | undefined): Record<string, unknown>[] {
  if (!raw) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new WebpvmError('E_BAD_REQUEST', 'WEBPVM_ICE_SERVERS must be JSON: a list of {"urls": ...} objects');
  }
  if (!Array.isArray(parsed) || parsed.some((s) => typeof s !== 'object' || s === null || !('urls' in s))) {
    throw new WebpvmError('E_BAD_REQUEST', 'WEBPVM_ICE_SERVERS must be a list of RTCIceServer objects, each with "urls"');
  }
  return parsed as Record<string, unknown>[];
}

/** A PostgreSQL connection URL, checked now so that a typo stops the start with a clear message. */
function databaseUrlFrom(raw: string | undefined): string | null {
  if (!raw) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebpvmError('E_BAD_REQUEST', 'DATABASE_URL must be a PostgreSQL URL: postgres://user[:password]@host[:port]/database');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new WebpvmError('E_BAD_REQUEST', `DATABASE_URL must be a postgres:// or postgresql:// URL, got ${url.protocol}//…`);
  }
  return raw;
}

/** A lease shorter than a second would run out between two renewals of a busy coordinator, and its jobs change hands for nothing. */
function jobLeaseFrom(env: NodeJS.ProcessEnv): number {
  const ms = intFrom(env, 'WEBPVM_JOB_LEASE_MS', 10_000);
  if (ms < 1_000) throw new WebpvmError('E_BAD_REQUEST', `WEBPVM_JOB_LEASE_MS must be at least 1000 (ms), got ${ms}`);
  return ms;
}

function publicUrlFrom(raw: string | undefined): string | null {
  if (!raw) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebpvmError('E_BAD_REQUEST', `WEBPVM_PUBLIC_URL must be an http(s) URL, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new WebpvmError('E_BAD_REQUEST', `WEBPVM_PUBLIC_URL must be an http(s) URL, got "${raw}"`);
  return url.origin;
}

/** A NATS server's URL: only beside a shared PostgreSQL database, where several coordinators make one grid. */
function natsUrlFrom(raw: string | undefined, databaseUrl: string | null): string | null {
  if (!raw) return null;
  if (!/^(nats|tls):\/\/[^\s]+$/.test(raw)) throw new WebpvmError('E_BAD_REQUEST', `NATS_URL must be a nats:// or tls:// URL, got "${raw}"`);
  if (!databaseUrl) throw new WebpvmError('E_BAD_REQUEST', 'NATS_URL joins coordinators that share a PostgreSQL database: set DATABASE_URL too');
  return raw;
}

/** Every knob has a default that works on a laptop; the environment overrides it (names in docs/protocol.md, "Configuration"). */
export function loadConfig(env: NodeJS.ProcessEnv): CoordinatorConfig {
  const databaseUrl = databaseUrlFrom(env.DATABASE_URL);
  return {
    port: intFrom(env, 'PORT', 8080),
    host: hostFrom(env),
    tls: tlsFrom(env),
    dataDir: path.resolve(env.WEBPVM_DATA || './.webpvm'),
    databaseUrl,
    natsUrl: natsUrlFrom(env.NATS_URL, databaseUrl),
    publicUrl: publicUrlFrom(env.WEBPVM_PUBLIC_URL),
    jobLeaseMs: jobLeaseFrom(env),
    adminToken: env.WEBPVM_ADMIN_TOKEN || null,
    webRoot: env.WEBPVM_WEB_ROOT ? path.resolve(env.WEBPVM_WEB_ROOT) : defaultWebRoot,
    heartbeatMs: intFrom(env, 'WEBPVM_HEARTBEAT_MS', 5_000),
    hostTimeoutMs: intFrom(env, 'WEBPVM_HOST_TIMEOUT_MS', 15_000),
    reconnectGraceMs: intFrom(env, 'WEBPVM_RECONNECT_GRACE_MS', 10_000),
    leaseFloorMs: intFrom(env, 'WEBPVM_LEASE_FLOOR_MS', LEASE_FLOOR_MS),
    hostsPerAddress: intFrom(env, 'WEBPVM_HOSTS_PER_ADDRESS', 64),
    trustProxy: env.WEBPVM_TRUST_PROXY === '1',
    hostBytesPerSecond: intFrom(env, 'WEBPVM_HOST_BYTES_PER_SECOND', 128 * 1024 * 1024),
    jobBytesPerSecond: intFrom(env, 'WEBPVM_JOB_BYTES_PER_SECOND', 128 * 1024 * 1024),
    retentionDays: env.WEBPVM_RETENTION_DAYS ? intFrom(env, 'WEBPVM_RETENTION_DAYS', 0) : null,
    checkpointIntervalMs: intFrom(env, 'WEBPVM_CHECKPOINT_INTERVAL_MS', 1_000),
    sqliteSynchronous: synchronousFrom(env.WEBPVM_SQLITE_SYNCHRONOUS),
    iceServers: iceServersFrom(env.WEBPVM_ICE_SERVERS),
    iceTransportPolicy: iceTransportPolicyFrom(env.WEBPVM_ICE_TRANSPORT_POLICY),
    logLevel: env.WEBPVM_LOG_LEVEL || 'info',
  };
}
