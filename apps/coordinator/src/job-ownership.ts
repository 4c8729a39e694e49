import type { Logger } from 'pino';
import type { JobLeases } from './store/job-leases.ts';

export interface JobOwnershipOptions {
  leases: JobLeases;
  log: Logger;
  /** How long a lease lasts unless renewed; renewed every third of it. */
  leaseMs: number;
  /** Jobs of a coordinator that died, taken here: the scheduler restores them (Scheduler `adopt`). */
  adopt(jobIds: string[]): Promise<void>;
  /** Whether this coordinator still runs the job (not finished: a finished job's lease is gone, not lost). */
  running(jobId: string): boolean;
  /** Jobs this coordinator runs were taken by another (it stalled past its leases): it must stop at once. */
  lost(jobIds: string[]): void;
  /** The cluster's coordinators, this one among them, at every turn (ClusterMembers tells pages of changes): where pages may fail over to. */
  members(coordinators: string[]): void;
}

/** Jobs taken at once: a coordinator that starts beside others does not take every orphan before they can. */
const CLAIM_AT_ONCE = 1_000;
/** A coordinator not seen for this long is forgotten; one stopped for an upgrade is still a member. */
const MEMBER_MEMORY_MS = 24 * 60 * 60 * 1000;

/**
 * Which unfinished jobs this coordinator runs, when several share one database (docs/cluster.md):
 * it renews the leases of its jobs every third of a lease, and takes jobs whose owner's lease ran
 * out (a coordinator that died, or one stopped cleanly, which lets go of its jobs at once). A job
 * this coordinator ran that another took is lost: the caller stops, as the store already refuses
 * its writes to that job. Each turn also marks it a member of the cluster, and learns the others.
 */
export class JobOwnership {
  readonly #opts: JobOwnershipOptions;
  /** Jobs confirmed to be this coordinator's by the last renewal or claim. */
  #held = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #turn: Promise<void> = Promise.resolve();
  #stopping = false;
  #lastRenewal = 0;

  constructor(opts: JobOwnershipOptions) {
    this.#opts = opts;
  }

  /** The jobs to restore at start: its own from before a restart (same coordinator id), and orphans. */
  async claimAtStart(): Promise<string[]> {
    const taken = await this.#opts.leases.claim(this.#opts.leaseMs, CLAIM_AT_ONCE);
    this.#held = new Set(taken);
    await this.#seeMembers();
    return taken;
  }

  async #seeMembers(): Promise<void> {
    this.#opts.members(await this.#opts.leases.members(MEMBER_MEMORY_MS));
  }

  /** Once the jobs taken at start are restored: renewals and takeovers from now on. */
  run(): void {
    // Late renewals count from here: restoring the jobs taken at start may take a while.
    this.#lastRenewal = performance.now();
    this.#timer = setInterval(() => {
      this.#turn = this.#turn.then(() => this.#renewAndClaim());
    }, Math.max(100, Math.floor(this.#opts.leaseMs / 3)));
    this.#timer.unref();
  }

  async #renewAndClaim(): Promise<void> {
    const { leases, leaseMs, log } = this.#opts;
    try {
      const asked = performance.now();
      const renewed = new Set(await leases.renew(leaseMs));
      const renewedAt = performance.now();
      // A coordinator whose renewals come this late is close to losing its jobs to another.
      if (renewedAt - this.#lastRenewal > leaseMs / 2) {
        log.warn({ sinceLastMs: Math.round(renewedAt - this.#lastRenewal), renewalMs: Math.round(renewedAt - asked), leaseMs }, 'job leases renewed late');
      }
      this.#lastRenewal = renewedAt;
      const lost = [...this.#held].filter((jobId) => !renewed.has(jobId) && this.#opts.running(jobId));
      this.#held = renewed;
      if (this.#stopping) {
        // Letting its jobs go anyway: one taken a little early costs the taker nothing it cannot restore.
        if (lost.length) log.warn({ jobs: lost }, 'jobs taken over while this coordinator stops');
        return;
      }
      if (lost.length) {
        this.#opts.lost(lost);
        return;
      }
      const taken = (await leases.claim(leaseMs, CLAIM_AT_ONCE)).filter((jobId) => !renewed.has(jobId));
      for (const jobId of taken) this.#held.add(jobId);
      if (taken.length) await this.#opts.adopt(taken);
      await this.#seeMembers();
    } catch (error) {
      // The store cannot be reached: the leases run out unless a later turn renews them in time.
      log.error({ err: error }, 'renewing job leases failed; trying again');
    }
  }

  /**
   * The start of a clean stop: leases are still renewed while the last writes are made, but no job
   * is taken any more, and one lost now does not stop the process.
   */
  stopping(): void {
    this.#stopping = true;
  }

  /** A clean stop: every job is let go at once, so that another coordinator need not wait out the leases. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#turn;
    await this.#opts.leases.release().catch((error: unknown) => this.#opts.log.warn({ err: error }, 'letting go of job leases failed; they run out'));
  }
}
