import { parseTid } from '@webpvm/vm-protocol';
import type { UnfinishedJob } from '../store/store.ts';
import { HostRegistry } from './host-registry.ts';
import { HostReports } from './host-reports.ts';
import { JobBook } from './job-book.ts';
import { KeptImages } from './kept-images.ts';
import { LEASE_FLOOR_MS } from './lease-deadlines.ts';
import { Leasing } from './leasing.ts';
import { Migrations } from './migrations.ts';
import type { SchedulerOptions } from './ports.ts';
import { ReadViews } from './read-views.ts';
import { Recovery } from './recovery.ts';
import { RelayPolicy } from './relay-policy.ts';
import { WINDOW_TASKS } from './task-window.ts';
import { VmServices } from './vm-services.ts';
import { Validators } from './validators.ts';
import { WriteBehind } from './write-behind.ts';

/**
 * The global scheduler, wired from its parts (docs/architecture.md, "The coordinator"): the job
 * book (jobs, tasks, transitions), the host registry, leasing, the hosts' reports, the PVM
 * services, migrations, crash recovery, the relay policy, the read views, and write-behind to the store. The
 * host gateway and the HTTP API talk to the parts directly; this only builds and restores them.
 */
export class Scheduler {
  readonly writes: WriteBehind;
  readonly hosts: HostRegistry;
  readonly jobs: JobBook;
  readonly leasing: Leasing;
  readonly reports: HostReports;
  readonly vm: VmServices;
  readonly migrations: Migrations;
  readonly recovery: Recovery;
  readonly kept: KeptImages;
  readonly relay: RelayPolicy;
  readonly views: ReadViews;
  /** The programs' `validate` exports, for replicated jobs: loaded before such a job is submitted or restored. */
  readonly validators = new Validators();
  readonly #opts: SchedulerOptions;

  constructor(opts: SchedulerOptions) {
    this.#opts = opts;
    const now = opts.now ?? Date.now;
    const monotonic = opts.monotonic ?? (() => performance.now());
    const dispatch = () => this.leasing.schedule();
    this.writes = new WriteBehind(opts.store, opts.log);
    this.hosts = new HostRegistry({
      now,
      monotonic,
      writes: this.writes,
      dispatch,
      lost: (ref, reason, by) => this.jobs.lost(ref, reason, by),
      gone: (host) => {
        if (host.kept.size) this.kept.keeperGone(host);
        this.recovery.hostGone(host);
      },
      // After the host's welcome, which follows its hello in the same turn: the page takes envelopes once welcomed.
      resumed: (host) =>
        queueMicrotask(() => {
          const link = host.link;
          if (link) for (const tid of host.assigned.keys()) this.relay.router.release(tid, (bytes) => link.sendBinary(bytes));
          for (const tid of host.assigned.keys()) this.vm.noticesAgain(tid);
          this.recovery.reattached(host);
        }),
      ...(opts.disconnectGraceMs !== undefined ? { disconnectGraceMs: opts.disconnectGraceMs } : {}),
      ...(opts.heldMs !== undefined ? { heldMs: opts.heldMs, foreign: (tid: string) => !this.jobs.job(parseTid(tid).jobId) } : {}),
    });
    this.jobs = new JobBook({
      now,
      monotonic,
      log: opts.log,
      writes: this.writes,
      hosts: this.hosts,
      migrations: opts.migrations,
      dispatch,
      ended: (task) => {
        this.vm.ended(task);
        this.kept.ended(task.tid);
      },
      pendingRoots: (jobId, from, until, limit) => opts.store.pendingRoots(jobId, from, until, limit),
      windowTasks: opts.windowTasks ?? WINDOW_TASKS,
      leaseFloorMs: opts.leaseFloorMs ?? LEASE_FLOOR_MS,
      agreement: (job) => this.validators.agreement(job.programHash, job.options.tolerance ?? null),
      finished: (job) => {
        this.validators.release(job.stored.programHash);
        this.recovery.jobEnded(job.stored.id);
      },
      restarted: (task) => {
        this.recovery.restarted(task);
        this.vm.noticesAgain(task.tid);
      },
      ...(opts.random ? { random: opts.random } : {}),
    });
    this.relay = new RelayPolicy({ book: this.jobs, hosts: this.hosts, log: opts.log });
    this.leasing = new Leasing({ book: this.jobs, hosts: this.hosts, writes: this.writes, router: this.relay.router, programUrl: opts.programUrl, kept: () => this.kept });
    this.reports = new HostReports({ book: this.jobs, hosts: this.hosts, writes: this.writes, dispatch, logKept: (hostId, tid) => this.recovery.logKept(hostId, tid) });
    this.vm = new VmServices({ book: this.jobs, hosts: this.hosts, router: this.relay.router, writes: this.writes });
    this.migrations = new Migrations({ now, monotonic, book: this.jobs, hosts: this.hosts, dispatch, kept: () => this.kept });
    const takeImage = (tid: string, attempt: number, image: number) => this.migrations.takeImage(tid, attempt, image);
    this.recovery = new Recovery({ book: this.jobs, hosts: this.hosts, takeImage, writes: this.writes, kept: () => this.kept });
    this.kept = new KeptImages({
      book: this.jobs,
      hosts: this.hosts,
      takeImage,
      restartPointKept: (task, delivered) => this.recovery.restartPointKept(task, delivered),
      restartPointLost: (task) => this.recovery.restartPointLost(task),
    });
    this.views = new ReadViews({ book: this.jobs, hosts: this.hosts, store: opts.store, writes: this.writes });
  }

  /**
   * Resume unfinished jobs after a restart (those named, when several coordinators share the
   * store: the ones this one took). Tasks that were running wait for their host to come back; the
   * rows of cancelled jobs a stop left pending are marked cancelled.
   */
  async restore(jobIds?: readonly string[]): Promise<void> {
    this.hosts.volunteers.restore(await this.#opts.store.loadVolunteers());
    this.jobs.restore(await this.#unfinished(jobIds));
    for (const jobId of await this.#opts.store.cancelledWithPending()) this.writes.sweep(jobId);
    const { jobs: jobCount, tasks: taskCount } = this.jobs.size;
    if (taskCount) this.#opts.log.info({ jobs: jobCount, tasks: taskCount }, 'resumed unfinished jobs');
    setTimeout(() => this.hosts.forgetUnclaimed(), this.#opts.reconnectGraceMs).unref();
  }

  /**
   * Takes over running jobs of a coordinator that died (docs/cluster.md): restored as after a
   * restart, while hosts are connected. A connected host keeps the tasks it said it runs; one not
   * connected has the reconnect grace to come back (to this coordinator) with them.
   */
  async adopt(jobIds: readonly string[]): Promise<void> {
    const unfinished = (await this.#unfinished(jobIds)).filter((u) => !this.jobs.job(u.job.id));
    if (!unfinished.length) return;
    this.jobs.restore(unfinished);
    const running = unfinished.flatMap((u) => u.tasks.flatMap((t) => (t.state === 'running' && t.hostId ? [{ tid: t.tid, attempt: t.attempt, hostId: t.hostId }] : [])));
    const away = this.hosts.adopted(running);
    this.#opts.log.info({ jobs: unfinished.map((u) => u.job.id), tasks: running.length }, 'took over jobs');
    setTimeout(() => this.hosts.forgetUnclaimed(away), this.#opts.reconnectGraceMs).unref();
  }

  async #unfinished(jobIds?: readonly string[]): Promise<UnfinishedJob[]> {
    const unfinished = await this.#opts.store.loadUnfinished(jobIds);
    for (const { job } of unfinished) {
      if (job.options.replicas < 2) continue;
      const source = await this.#opts.programSource?.(job.programHash);
      // A job accepted before goes on: without its validate, its replicas compare as canonical JSON.
      if (source) await this.validators.prepare(job.programHash, source).catch((err: unknown) => this.#opts.log.error({ err, job: job.id }, 'validate not loaded'));
    }
    return unfinished;
  }

  /** Expires attempts past their deadline; called on a timer. */
  tick(): void {
    this.jobs.deadlines.expire();
  }
}
