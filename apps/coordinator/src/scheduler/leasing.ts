import { LIMITS, imageParts, type TaskAssignment } from '@webpvm/vm-protocol';
import { type HostRegistry, loadOf } from './host-registry.ts';
import type { KeptImages } from './kept-images.ts';
import type { JobBook } from './job-book.ts';
import type { HostRun, JobRun, TaskRun } from './model.ts';
import type { RelayRouter } from './relay-router.ts';
import type { WriteBehind } from './write-behind.ts';

export interface LeasingOptions {
  book: JobBook;
  hosts: HostRegistry;
  writes: WriteBehind;
  router: RelayRouter;
  programUrl: (hash: string) => string;
  /** Gives back images other volunteers keep, for tasks that restart from one. */
  kept: () => KeptImages;
}

/**
 * A host holds at least two tasks per slot, so the next task is already there when one ends; a
 * host that finishes tasks quickly holds about PREFETCH_SECONDS of its work, so that tiny tasks
 * travel in batches and the round trip to the coordinator does not bound its throughput. Its
 * page hands each worker up to half a second of work at once (slot-pool.ts): twice that lets
 * it hand the next batch before a worker's runs out.
 */
const PREFETCH_PER_SLOT = 2;
const PREFETCH_SECONDS = 1;
const PREFETCH_MAX = 512;

/** Retries looked through for one a host may take: past these, it takes a fresh task or waits. */
const RETRIES_SCANNED = 64;

function prefetchDepth(host: HostRun): number {
  return Math.max(host.slots * PREFETCH_PER_SLOT, Math.min(PREFETCH_MAX, host.slots + Math.ceil(host.rate * PREFETCH_SECONDS)));
}

/** A bag task whose attempt can be leased again elsewhere as it is: nothing of it lives on its host but the assignment. */
function canMove(task: TaskRun, attempt: number): boolean {
  const { start } = task;
  return (
    task.job.stored.options.kind === 'bag' &&
    task.spec.parent === null &&
    task.quorum === null &&
    task.state === 'running' &&
    task.attempt === attempt &&
    task.migration === null &&
    start.image === null &&
    start.imageAway === null &&
    start.kept === null
  );
}

/**
 * Leasing: pending tasks go to free host slots, fairly across jobs by priority, in batches —
 * each batch after the images and before the held messages of the tasks it names.
 */
export class Leasing {
  readonly #opts: LeasingOptions;
  #scheduled = false;

  constructor(opts: LeasingOptions) {
    this.#opts = opts;
  }

  /** Leases once this turn of the event loop is over, however many changes asked for it. */
  schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#dispatch();
    });
  }

  /**
   * Tasks to place now go first, anywhere; then every host is filled up to its slots, then topped
   * up to its prefetch depth, so that a few long tasks spread over all hosts before any host
   * queues a second one — as far as its volunteer's allowance goes (volunteers.ts). Tasks placed
   * now (spawned, migrating) are not held back by it: all of a PVM program's tasks must run. Only
   * the workers a tab would start for spawned tasks are bounded.
   */
  #dispatch(): void {
    const hosts = this.#opts.hosts.takers();
    if (!hosts.length) return;
    const batches = new Map<HostRun, TaskAssignment[]>();
    // Leases each volunteer holds over all its tabs, against what its record allows (volunteers.ts).
    const held = new Map<string | null, number>();
    for (const host of hosts) held.set(host.volunteerId, (held.get(host.volunteerId) ?? 0) + host.assigned.size);
    const add = (host: HostRun, task: TaskRun) => {
      const batch = batches.get(host) ?? [];
      batch.push(this.#lease(task, host));
      batches.set(host, batch);
      held.set(host.volunteerId, held.get(host.volunteerId)! + 1);
    };
    const allowed = (host: HostRun) => host.volunteerId === null || held.get(host.volunteerId)! < this.#opts.hosts.volunteers.get(host.volunteerId).allowance;
    const spawned = new Map<HostRun, number>();
    const spawnedOn = (host: HostRun): number => {
      let count = spawned.get(host);
      if (count === undefined) {
        count = 0;
        for (const tid of host.assigned.keys()) if (this.#opts.book.task(tid)?.spec.parent != null) count++;
        spawned.set(host, count);
      }
      return count;
    };
    for (const job of this.#opts.book.active) {
      const waiting: TaskRun[] = [];
      for (const task of job.placeNow.splice(0)) {
        if (task.state !== 'pending') continue;
        // A spawned task takes a worker of its own: only a host with room for one more (LIMITS.spawnedPerHost).
        const roomy = task.spec.parent === null ? hosts : hosts.filter((h) => spawnedOn(h) < LIMITS.spawnedPerHost);
        if (!roomy.length) {
          waiting.push(task);
          continue;
        }
        // A migrating task goes where its image was sent when that host can still take it, else not
        // back where it left, nor to a volunteer it is to avoid (a task given back at a job's end may
        // have failed there before) while another can take it.
        const named = roomy.find((h) => h.hostId === task.migration?.to);
        const elsewhere = roomy.filter((h) => h.hostId !== task.migration?.from);
        const unspoiled = elsewhere.filter((h) => !task.avoid.has(h.volunteerId));
        const candidates = unspoiled.length ? unspoiled : elsewhere.length ? elsewhere : roomy;
        const host = named ?? candidates.reduce((best, h) => (loadOf(h) < loadOf(best) ? h : best));
        add(host, task);
        if (task.spec.parent !== null) spawned.set(host, spawnedOn(host) + 1);
      }
      // They wait for a spawned task to end or a host to come: either schedules leasing again.
      job.placeNow.push(...waiting);
    }
    const volunteers = new Set(hosts.map((h) => h.volunteerId));
    for (const limit of [(h: HostRun) => h.slots, prefetchDepth]) {
      let progress = true;
      while (progress) {
        progress = false;
        for (const host of hosts) {
          if (host.assigned.size >= limit(host) || !allowed(host)) continue;
          const task = this.#nextTask(host, volunteers);
          if (!task) continue;
          add(host, task);
          progress = true;
        }
      }
    }
    // A message-passing task's assignment goes once its lease is stored: a restarted coordinator must
    // never hand out an attempt of it twice, two live attempts sending as one. A bag task's goes at
    // once: a repeat of one is only work done twice, its second outcome refused.
    const passing = [...batches.values()].some((tasks) => tasks.some((t) => t.parent !== null || this.#opts.book.job(t.jobId)?.stored.options.kind !== 'bag'));
    if (passing) this.#opts.writes.schedule(() => this.#send(batches));
    else if (batches.size) {
      this.#send(batches);
      this.#opts.writes.schedule();
    }
    if (hosts.some((h) => h.assigned.size < h.slots)) this.#balance(hosts);
  }

  /** Each host's new assignments, each after its image, then what the relay held for them. */
  #send(batches: Map<HostRun, TaskAssignment[]>): void {
    const { book, router } = this.#opts;
    for (const [host, assignments] of batches) {
      // One that lost its connection meanwhile gets them as lost, or again when it says hello.
      const link = host.link;
      const current = assignments.filter((a) => {
        const task = book.task(a.tid);
        // A replica's attempts run side by side; any other task runs its latest attempt only.
        return task?.state === 'running' && task.runs.get(a.attempt) === host.hostId && (task.quorum !== null || task.attempt === a.attempt);
      });
      if (!link || !current.length) continue;
      // An image goes before the assignment that names it: the host finds it whole.
      for (const a of current) {
        const start = a.imageBytes === undefined ? null : book.task(a.tid)?.start;
        const image = start && !start.imageAway ? start.image : null;
        if (image) for (const part of imageParts(a.tid, a.attempt, image)) link.sendBinary(part);
      }
      for (let i = 0; i < current.length; i += LIMITS.itemsPerBatch) link.send({ type: 'assign', tasks: current.slice(i, i + LIMITS.itemsPerBatch) });
      for (const a of current) {
        book.task(a.tid)!.assignmentSent = true;
        router.release(a.tid, (bytes) => link.sendBinary(bytes));
      }
    }
  }

  /**
   * A host has free slots and nothing is left to lease: at a job's end, the other hosts still
   * hold up to PREFETCH_SECONDS of its tasks each, and the job would wait on the slowest queue.
   * Each host with tasks queued behind its slots is asked to give back the later half of them
   * (`withdraw`); those it has not started come back (HostReports `withdrawn`) and are leased
   * to the idle hosts. An attempt is asked back once; only bag tasks that start afresh or from a
   * checkpoint kept here move so (not spawned tasks, which message, nor migrating ones).
   */
  #balance(hosts: HostRun[]): void {
    for (const host of hosts) {
      if (host.assigned.size <= host.slots) continue;
      // The latest leased are the likeliest to wait in the page's queue; the first `slots` run.
      const queued = [...host.assigned].slice(host.slots).reverse();
      const movable = queued.filter(([tid, attempt]) => {
        const task = this.#opts.book.task(tid);
        return task !== undefined && task.askedBack !== attempt && canMove(task, attempt);
      });
      const asked = movable.slice(0, Math.min(LIMITS.itemsPerBatch, Math.ceil(movable.length / 2)));
      if (!asked.length) continue;
      for (const [tid, attempt] of asked) this.#opts.book.task(tid)!.askedBack = attempt;
      host.link?.send({ type: 'withdraw', tasks: asked.map(([tid, attempt]) => ({ tid, attempt })) });
    }
  }

  /**
   * The next task for `host` of the job furthest below its fair share (running ÷ priority), oldest
   * job first on ties: a retry, else the next root task of its window. A task goes back to a
   * volunteer whose attempt at it failed only when no other volunteer is connected (`volunteers`):
   * one lying host cannot fail a task by answering every attempt of it with an error.
   */
  #nextTask(host: HostRun, volunteers: ReadonlySet<string | null>): TaskRun | null {
    let best: JobRun | null = null;
    let bestLoad = Infinity;
    for (const job of this.#opts.book.active) {
      // A lost attempt's result can come after its retry was queued (a host back with what it
      // kept offline): the task ended, and must not run, nor end, again.
      while (job.retries.length && job.retries[0]!.state !== 'pending') job.retries.shift();
      while (job.replicas.length && job.replicas[0]!.state !== 'running') job.replicas.shift();
      if (!job.window.waiting && !job.retries.length && !job.replicas.length) continue;
      const quota = job.stored.options.ownerRunning;
      if (quota != null && this.#opts.book.runningOf(job.stored.owner) >= quota) continue;
      const load = job.running / job.stored.options.priority;
      if (load < bestLoad) {
        best = job;
        bestLoad = load;
      }
    }
    if (!best) return null;
    // Replicas first — they finish tasks already begun — to a volunteer that has not run one of that task.
    const { replicas, retries } = best;
    const byAddress = best.stored.options.distinct === 'address';
    const r = replicas
      .slice(0, RETRIES_SCANNED)
      .findIndex(
        (task) =>
          task.state === 'running' &&
          !task.quorum!.volunteers.has(host.volunteerId) &&
          !(byAddress && task.quorum!.addresses.has(host.address)) &&
          !host.assigned.has(task.tid),
      );
    if (r >= 0) {
      const task = replicas.splice(r, 1)[0]!;
      task.quorum!.queued--;
      return task;
    }
    const fits = (task: TaskRun) => !task.avoid.has(host.volunteerId) || [...volunteers].every((v) => task.avoid.has(v));
    const i = retries.slice(0, RETRIES_SCANNED).findIndex(fits);
    if (i >= 0) return retries.splice(i, 1)[0]!;
    return best.window.take() ?? null;
  }

  #lease(task: TaskRun, host: HostRun): TaskAssignment {
    const { job, start, spec } = task;
    const { book, hosts, writes } = this.#opts;
    task.attempt++;
    task.assignmentSent = false;
    // The image went over a data channel to another host: its sender sends it through here instead.
    if (start.imageAway && task.migration?.to !== host.hostId) {
      hosts.send(start.imageAway.from, { type: 'send-image', tid: task.tid, attempt: task.attempt });
    } else if (!start.imageAway && !start.image && start.kept) {
      this.#opts.kept().request(task);
    }
    task.hostId = host.hostId;
    task.ranOn.add(host.hostId);
    job.ranOn.add(host.hostId);
    task.runs.set(task.attempt, host.hostId);
    const replica = task.state === 'running';
    book.transition(task, 'running');
    if (!replica) book.deadlines.start(task);
    if (task.quorum) book.replication.leased(task, host.volunteerId, host.address);
    host.assigned.set(task.tid, task.attempt);
    // After a restart it reconnects as itself and keeps its tasks.
    hosts.store(host);
    job.stored.attempts++;
    if (job.stored.state === 'queued') job.stored.state = 'running';
    writes.job(job);
    const imageBytes = start.imageAway?.bytes ?? start.image?.byteLength ?? start.kept?.bytes;
    const recovering = task.recovering;
    task.recovering = false;
    return {
      tid: task.tid,
      attempt: task.attempt,
      jobId: job.stored.id,
      parent: spec.parent,
      name: spec.name,
      programUrl: this.#opts.programUrl(job.stored.programHash),
      input: spec.input,
      resume: imageBytes === undefined ? start.checkpoint : null,
      ...(imageBytes === undefined ? {} : { imageBytes }),
      ...(recovering ? { recovering } : {}),
      seed: spec.seed,
      timeoutMs: job.stored.options.taskTimeoutMs,
    };
  }
}
