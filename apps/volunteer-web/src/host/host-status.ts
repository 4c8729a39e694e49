import type { MigrationReason } from '@webpvm/vm-protocol';
import type { ConnectionState } from './coordinator-link.ts';
import type { MessageCounters } from './messaging/page-router.ts';
import type { RunningTaskView } from './slot-pool.ts';

/** What the page shows and what tests read through `globalThis.__webpvmHost.snapshot()`. */
export interface HostSnapshot {
  connection: ConnectionState;
  hostId: string | null;
  /** Its id on the coordinator's PeerServer: null before a welcome, or with `?p2p=off`. */
  peerId: string | null;
  slots: number;
  policy: string;
  running: RunningTaskView[];
  queued: number;
  /** Outcomes this page produced since it loaded. */
  done: number;
  failed: number;
  pendingResults: number;
  workersStarted: number;
  /** Task messages (not acknowledgements or chunks) by the way they went, since the page loaded. */
  messages: MessageCounters & { channelsOpen: number };
  /** True while the person at the machine uses it: no task runs here and no slot is offered. */
  paused: boolean;
  pauseReason: MigrationReason | null;
  /** Web Workers alive on this page, busy or idle. */
  workersAlive: number;
  /**
   * Tasks that left this page for another host, and tasks that arrived from one, since it loaded;
   * `refilled`: of those that arrived, the ones whose image named messages their senders sent again.
   */
  migrations: { out: number; in: number; refilled: number };
  /** The last reclaim: from its event until no worker was left on this page (null while some still run). */
  lastReclaim: { reason: MigrationReason; clearedMs: number | null } | null;
}

/** What the other parts of the host report into a snapshot, read as it is taken. */
export type HostReadings = Omit<HostSnapshot, 'done' | 'failed' | 'paused' | 'pauseReason' | 'migrations' | 'lastReclaim'>;

/**
 * The counters re-render at most this often, however chatty the tasks are: each render of this
 * page costs ~7 ms of CPU across the renderer, its raster threads, its compositor and the GPU
 * process, taken from the tasks (at 10 Hz, two tabs took 5% of a 2-core machine: bench:throughput's
 * CPU-bound rows, visible).
 */
const NOTIFY_MS = 1000;

/**
 * What this host has done and whether the person at the machine has it back, counted here since
 * the page loaded, and the snapshot the page renders: taken again at most every NOTIFY_MS after
 * a change, and the same object in between, as React's useSyncExternalStore wants.
 */
export class HostStatus {
  #read: () => HostReadings;
  #paused = false;
  #pauseReason: MigrationReason | null = null;
  #lastReclaim: { reason: MigrationReason; at: number; clearedMs: number | null } | null = null;
  #migrations = { out: 0, in: 0, refilled: 0 };
  #done = 0;
  #failed = 0;
  #listeners = new Set<() => void>();
  #notifyTimer: ReturnType<typeof setTimeout> | null = null;
  #current: HostSnapshot;

  /** Takes the first snapshot at once: the other parts of the host must exist. */
  constructor(read: () => HostReadings) {
    this.#read = read;
    this.#current = this.snapshot();
  }

  get paused(): boolean {
    return this.#paused;
  }

  get pauseReason(): MigrationReason | null {
    return this.#pauseReason;
  }

  /** The person is back: true when the host was not paused already (the reclaim starts now). */
  pause(reason: MigrationReason): boolean {
    if (this.#paused) return false;
    this.#paused = true;
    this.#pauseReason = reason;
    this.#lastReclaim = { reason, at: performance.now(), clearedMs: null };
    return true;
  }

  /** The machine is free again: true when the host was paused. */
  resume(): boolean {
    if (!this.#paused) return false;
    this.#paused = false;
    this.#pauseReason = null;
    return true;
  }

  /** Obtrusiveness as the page sees it: the reclaim's event until its last worker ended (`now`, or at `endedAt`). */
  noteCleared(workersAlive: number, endedAt = performance.now()): void {
    const reclaim = this.#lastReclaim;
    if (this.#paused && reclaim && reclaim.clearedMs === null && workersAlive === 0) {
      reclaim.clearedMs = endedAt - reclaim.at;
    }
  }

  outcome(ok: boolean): void {
    if (ok) this.#done += 1;
    else this.#failed += 1;
  }

  migratedOut(): void {
    this.#migrations.out += 1;
  }

  migratedIn(refilled: boolean): void {
    this.#migrations.in += 1;
    if (refilled) this.#migrations.refilled += 1;
  }

  snapshot(): HostSnapshot {
    const read = this.#read();
    return {
      connection: read.connection,
      hostId: read.hostId,
      peerId: read.peerId,
      slots: read.slots,
      policy: read.policy,
      running: read.running,
      queued: read.queued,
      done: this.#done,
      failed: this.#failed,
      pendingResults: read.pendingResults,
      workersStarted: read.workersStarted,
      messages: read.messages,
      paused: this.#paused,
      pauseReason: this.#pauseReason,
      workersAlive: read.workersAlive,
      migrations: { ...this.#migrations },
      lastReclaim: this.#lastReclaim && { reason: this.#lastReclaim.reason, clearedMs: this.#lastReclaim.clearedMs },
    };
  }

  /** For React's useSyncExternalStore: the same object until something changed. */
  readonly current = (): HostSnapshot => this.#current;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  /**
   * Something shown changed: listeners hear of it within NOTIFY_MS, once for all changes until
   * then; `now` for what the person at the machine waits to see (paused, reconnected), at once.
   */
  changed(now = false): void {
    if (now && this.#notifyTimer) {
      clearTimeout(this.#notifyTimer);
      this.#notifyTimer = null;
    }
    this.#notifyTimer ??= setTimeout(() => {
      this.#notifyTimer = null;
      this.#current = this.snapshot();
      for (const listener of this.#listeners) listener();
    }, now ? 0 : NOTIFY_MS);
  }

  stop(): void {
    if (this.#notifyTimer) clearTimeout(this.#notifyTimer);
  }
}
