import type { CoordinatorMessage, MigrationEvent } from '@webpvm/vm-protocol';
import type { Logger } from 'pino';
import type { Store } from '../store/store.ts';

/** How the scheduler talks to one connected host; the host gateway owns the socket. */
export interface HostLink {
  send(message: CoordinatorMessage): void;
  /** A message envelope (vm-protocol envelope.ts), relayed as a binary frame. */
  sendBinary(bytes: Uint8Array): void;
}

/** Where finished migrations are recorded (event-log.ts): the dashboard's timeline and `GET /api/events`. */
export interface MigrationSink {
  record(event: Omit<MigrationEvent, 'id'>): void;
}

export interface SchedulerOptions {
  store: Store;
  log: Logger;
  migrations?: MigrationSink;
  checkpointIntervalMs: number;
  reconnectGraceMs: number;
  /** How long a host whose connection closed keeps its tasks (host-registry.ts DISCONNECT_GRACE_MS). */
  disconnectGraceMs?: number;
  /**
   * One coordinator of several (docs/cluster.md): how long a connecting host's tasks of jobs this
   * coordinator does not run are held for a takeover (`adopt`) before they are cancelled.
   * Unset: the coordinator is alone, and runs every job there is.
   */
  heldMs?: number;
  programUrl: (hash: string) => string;
  /** Wall-clock time (Date.now), for what is stored or shown: createdAt, finishedAt, lastSeenAt, a migration's `at`. */
  now?: () => number;
  /**
   * Time that only moves forward (performance.now), for deadlines, leases and rates: a step of the
   * wall clock (NTP, a VM resumed) must neither expire every lease at once nor hold them all.
   */
  monotonic?: () => number;
  /** Root tasks waiting for their first attempt that a job holds in memory at most (task-window.ts). */
  windowTasks?: number;
  /** The shortest lease of a bag task whose job sets no taskTimeoutMs (lease-deadlines.ts). */
  leaseFloorMs?: number;
  /** Draws spot checks of adaptive replication (Math.random); tests fix it. */
  random?: () => number;
  /** A stored program's module, by hash: a restart loads the `validate` of replicated jobs from it. */
  programSource?: (hash: string) => Promise<string | null>;
}
