import type { CoordinatorMessage, TaskRef } from '@webpvm/vm-protocol';
import type { HostRun } from './model.ts';
import type { HostLink } from './ports.ts';
import { Volunteers } from './volunteers.ts';
import type { WriteBehind } from './write-behind.ts';

export interface HostRegistryOptions {
  now: () => number;
  /** For completion rates (SchedulerOptions `monotonic`). */
  monotonic: () => number;
  writes: WriteBehind;
  /** Slots changed or hosts came or went: leasing should look again. */
  dispatch: () => void;
  /** An attempt this host, of volunteer `by`, held is lost with it (the page lost it, or the host went away). */
  lost: (ref: TaskRef, reason: string, by: string | null) => void;
  /** How long a host whose connection closed keeps its tasks for it to come back (DISCONNECT_GRACE_MS); 0 loses them at once. */
  disconnectGraceMs?: number;
  /** A host is gone for good, and what it kept for others with it: images (kept-images.ts), ended tasks' logs (recovery.ts). */
  gone?: (host: HostRun) => void;
  /** A host connected again with tasks it kept: what waited for them at the relay while it was away goes now. */
  resumed?: (host: HostRun) => void;
  /**
   * Several coordinators (docs/cluster.md): whether a task belongs to a job this coordinator does
   * not run now but may take over (its owner died). A host's claim to such a task is held, not
   * cancelled, for `heldMs`: a takeover in that time finds its host still running it (`adopted`).
   */
  foreign?: (tid: string) => boolean;
  heldMs?: number;
}

/**
 * A host whose connection closed keeps its tasks this long. A page reconnects 250 ms after a
 * drop, so a flaky network costs its tasks nothing; losing them at once made each drop a retry,
 * and a job failed after ten ("lost with its host 10 times", e2e flaky-network.spec.ts). A browser
 * that died does not come back: its tasks run elsewhere this much later.
 */
export const DISCONNECT_GRACE_MS = 1500;

/** A host as it says hello: who it is, proven by its secret, and how it reaches its peers. */
export interface HostHello {
  hostId: string;
  secretHash: string;
  createdAt: number;
  userAgent: string;
  peerId: string;
  /** Its browser profile's volunteer (auth.ts `volunteerIdOf`). */
  volunteerId: string;
  /** The network address its connection came from. */
  address: string;
}

/** Hosts gone that are remembered (for `GET /api/hosts`, and their tasks) before the oldest are forgotten. */
const MAX_OFFLINE = 1000;

/** Tasks per second a host completes are measured over windows of this length. */
const RATE_WINDOW_MS = 250;

/** The load of a host: how full its slots are. */
export const loadOf = (host: HostRun): number => host.assigned.size / host.slots;

/**
 * Every host this coordinator has seen since it started — connected or not — with what it holds:
 * its link, slots, assigned attempts, drain order and completion rate.
 */
export class HostRegistry {
  readonly #hosts = new Map<string, HostRun>();
  /** Hosts whose connection closed with tasks, by id: when their grace ends (DISCONNECT_GRACE_MS). */
  readonly #graces = new Map<string, ReturnType<typeof setTimeout>>();
  /** hostId → tid → attempt: what connected hosts run of jobs another coordinator runs (`foreign`). */
  readonly #held = new Map<string, Map<string, number>>();
  /** The browser profiles behind the hosts: how many leases each may hold, their record and trust (stored). */
  readonly volunteers: Volunteers;
  readonly #opts: HostRegistryOptions;

  constructor(opts: HostRegistryOptions) {
    this.#opts = opts;
    this.volunteers = new Volunteers((record) => {
      opts.writes.volunteer(record);
      opts.writes.schedule();
    });
  }

  get(hostId: string | null): HostRun | undefined {
    return hostId === null ? undefined : this.#hosts.get(hostId);
  }

  all(): IterableIterator<HostRun> {
    return this.#hosts.values();
  }

  /** Hosts that may be given tasks now: connected, with slots, not draining. */
  takers(): HostRun[] {
    return [...this.#hosts.values()].filter((h) => h.link !== null && h.slots > 0 && !h.draining);
  }

  /** The least loaded host that could take a task now, other than `leaving`. */
  leastLoaded(leaving: string): HostRun | null {
    let best: HostRun | null = null;
    for (const h of this.takers()) if (h.hostId !== leaving && (!best || loadOf(h) < loadOf(best))) best = h;
    return best;
  }

  /** The host of a connection, or one that held tasks before a restart and may come back. */
  known(hostId: string): HostRun {
    let host = this.#hosts.get(hostId);
    if (!host) {
      const now = this.#opts.now();
      host = {
        hostId,
        volunteerId: null,
        address: null,
        peerId: null,
        link: null,
        slots: 0,
        userAgent: '',
        secretHash: '',
        createdAt: now,
        connectedAt: null,
        lastSeenAt: now,
        stored: false,
        done: 0,
        assigned: new Map(),
        draining: false,
        rate: 0,
        rateSince: this.#opts.monotonic(),
        rateCount: 0,
        kept: new Map(),
      };
      this.#hosts.set(hostId, host);
    }
    return host;
  }

  /**
   * A host connected. What it still runs of what it was assigned, it keeps; what it lost (a reload,
   * a tab closed and reopened) runs elsewhere; what it runs that is no longer its own is cancelled.
   */
  attach(hello: HostHello, link: HostLink, slots: number, running: TaskRef[]): void {
    const host = this.known(hello.hostId);
    this.#endGrace(host.hostId);
    const now = this.#opts.now();
    Object.assign(host, { link, volunteerId: hello.volunteerId, address: hello.address, peerId: hello.peerId, slots, userAgent: hello.userAgent, secretHash: hello.secretHash, createdAt: hello.createdAt });
    host.connectedAt = now;
    host.lastSeenAt = now;
    const stillThere = new Map(running.map((r) => [r.tid, r.attempt]));
    const unassigned = running.filter((r) => host.assigned.get(r.tid) !== r.attempt);
    const foreign = this.#opts.foreign;
    const stale = foreign ? unassigned.filter((r) => !foreign(r.tid)) : unassigned;
    if (stale.length < unassigned.length) this.#hold(host, unassigned.filter((r) => !stale.includes(r)));
    for (const [tid, attempt] of [...host.assigned]) {
      if (stillThere.get(tid) === attempt) continue;
      host.assigned.delete(tid);
      this.#opts.lost({ tid, attempt }, 'host lost the task', host.volunteerId);
    }
    if (stale.length) this.sendCancel(host.hostId, stale, 'no longer assigned to this host');
    this.#changed(host);
    if (host.assigned.size) this.#opts.resumed?.(host);
  }

  /** Tasks of jobs run elsewhere that `host` said it runs: kept for a takeover for a while, then cancelled. */
  #hold(host: HostRun, tasks: TaskRef[]): void {
    const held = new Map(tasks.map((t) => [t.tid, t.attempt]));
    this.#held.set(host.hostId, held);
    setTimeout(() => {
      if (this.#held.get(host.hostId) !== held) return;
      this.#held.delete(host.hostId);
      if (held.size) this.sendCancel(host.hostId, [...held].map(([tid, attempt]) => ({ tid, attempt })), 'its job is run by another coordinator');
    }, this.#opts.heldMs ?? 0).unref();
  }

  /**
   * Jobs taken over from a coordinator that died were restored with these running attempts (the
   * hosts they ran on may be connected here already). A connected host that said it runs one keeps
   * it; one that did not lost it; a host not connected has until `forgetUnclaimed` to come back.
   * Answers the hosts not connected.
   */
  adopted(running: readonly (TaskRef & { hostId: string })[]): Set<string> {
    const away = new Set<string>();
    const resumed = new Set<HostRun>();
    for (const { tid, attempt, hostId } of running) {
      const host = this.#hosts.get(hostId);
      if (!host?.link) {
        away.add(hostId);
        continue;
      }
      const held = this.#held.get(hostId);
      if (held?.get(tid) === attempt) {
        held.delete(tid);
        resumed.add(host);
        continue;
      }
      host.assigned.delete(tid);
      this.#opts.lost({ tid, attempt }, 'its host no longer ran it when its job was taken over', host.volunteerId);
    }
    for (const host of resumed) this.#opts.resumed?.(host);
    this.#opts.dispatch();
    return away;
  }

  /** The connection `link` of a host closed (a newer one may have replaced it: then nothing changes). */
  detach(hostId: string, link: HostLink): void {
    const host = this.#hosts.get(hostId);
    if (!host || host.link !== link) return;
    const peerId = host.peerId;
    host.link = null;
    host.peerId = null;
    if (peerId) for (const other of this.#hosts.values()) other.link?.send({ type: 'peer-gone', peerId });
    host.connectedAt = null;
    host.lastSeenAt = this.#opts.now();
    const graceMs = this.#opts.disconnectGraceMs ?? DISCONNECT_GRACE_MS;
    if ((host.assigned.size || host.kept.size) && graceMs > 0) {
      const grace = setTimeout(() => {
        this.#graces.delete(hostId);
        if (!host.link) this.#disconnected(host);
      }, graceMs);
      grace.unref();
      this.#graces.set(hostId, grace);
      this.#changed(host);
    } else this.#disconnected(host);
    this.#forgetOffline();
  }

  /** The host did not come back in time: what it held runs elsewhere (`#changed` has leasing look again). */
  #disconnected(host: HostRun): void {
    if (host.assigned.size && host.volunteerId) this.volunteers.dropped(host.volunteerId);
    for (const [tid, attempt] of host.assigned) this.#opts.lost({ tid, attempt }, 'host disconnected', host.volunteerId);
    host.assigned.clear();
    this.#opts.gone?.(host);
    this.#changed(host);
  }

  #endGrace(hostId: string): void {
    clearTimeout(this.#graces.get(hostId));
    this.#graces.delete(hostId);
  }

  /**
   * Past MAX_OFFLINE hosts gone, the longest gone that hold nothing are forgotten (and volunteers
   * left with no host and no record): a loop of connections under fresh identities costs bounded
   * memory. A forgotten host that comes back is known again by its stored row, if it has one.
   */
  #forgetOffline(): void {
    const offline = [...this.#hosts.values()].filter((h) => h.link === null);
    if (offline.length <= MAX_OFFLINE) return;
    const forgettable = offline.filter((h) => h.assigned.size === 0).sort((a, b) => a.lastSeenAt - b.lastSeenAt);
    for (const host of forgettable.slice(0, offline.length - Math.floor(MAX_OFFLINE * 0.9))) this.#hosts.delete(host.hostId);
    const kept = new Set([...this.#hosts.values()].map((h) => h.volunteerId));
    this.volunteers.forgetIdle((volunteerId) => kept.has(volunteerId));
  }

  /** After a restart (or a takeover, for the hosts `only`): hosts that held tasks and did not come back within the grace period lose them. */
  forgetUnclaimed(only?: ReadonlySet<string>): void {
    for (const host of this.#hosts.values()) {
      if (host.link || (only && !only.has(host.hostId))) continue;
      for (const [tid, attempt] of host.assigned) this.#opts.lost({ tid, attempt }, 'host did not come back after restart', host.volunteerId);
      host.assigned.clear();
      this.#opts.gone?.(host);
    }
    this.#opts.dispatch();
  }

  /** The secret hash of a host known to this process but maybe not yet stored. */
  secretHashOf(hostId: string): string | null {
    return this.#hosts.get(hostId)?.secretHash || null;
  }

  /**
   * The host holds something a restarted coordinator must find with it (a task, another
   * volunteer's image): its row is written, so it reconnects as itself.
   */
  store(host: HostRun): void {
    if (host.stored) return;
    host.stored = true;
    this.#opts.writes.host(host);
  }

  seen(hostId: string): void {
    const host = this.#hosts.get(hostId);
    if (host) host.lastSeenAt = this.#opts.now();
  }

  setSlots(hostId: string, slots: number): void {
    const host = this.#hosts.get(hostId);
    if (!host) return;
    host.slots = slots;
    this.#opts.dispatch();
  }

  /** Counts what a host completed: its rate decides how many tasks it holds ahead (leasing). */
  completed(host: HostRun, done: number, reported: number): void {
    if (done > 0) {
      host.done += done;
      this.#opts.writes.host(host);
    }
    host.rateCount += reported;
    const now = this.#opts.monotonic();
    const elapsed = now - host.rateSince;
    if (elapsed < RATE_WINDOW_MS) return;
    host.rate = (host.rate + (host.rateCount * 1000) / elapsed) / 2;
    host.rateSince = now;
    host.rateCount = 0;
  }

  send(hostId: string | null, message: CoordinatorMessage): void {
    this.get(hostId)?.link?.send(message);
  }

  sendCancel(hostId: string | null, tasks: TaskRef[], reason: string): void {
    this.send(hostId, { type: 'cancel', tasks, reason });
  }

  /** The attempt no longer holds a slot of its host (it ended, moved or was withdrawn). */
  release(hostId: string | null, tid: string): void {
    this.get(hostId)?.assigned.delete(tid);
  }

  #changed(host: HostRun): void {
    // A host is stored once it has held or done a task: a loop of hellos that never compute adds no row.
    if (host.done > 0 || host.assigned.size > 0) this.#opts.writes.host(host);
    this.#opts.writes.schedule();
    this.#opts.dispatch();
  }
}
