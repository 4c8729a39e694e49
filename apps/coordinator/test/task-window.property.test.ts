import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Scheduler } from '../src/scheduler/scheduler.ts';
import type { SqliteStore } from '../src/store/sqlite-store.ts';
import { FakeHost, closeSchedulers, connect, schedulerHarness, settle, spec, statusOf } from './support/scheduler-harness.ts';

afterEach(closeSchedulers);

/** Small windows, so that a few dozen tasks make them move many times. */
const WINDOWS = [2, 3, 5];
const MAX_ATTEMPTS = 3;

type Command =
  | { kind: 'submit'; inputs: number; open: boolean }
  | { kind: 'append'; job: number; inputs: number; close: boolean }
  | { kind: 'connect'; slots: number }
  | { kind: 'detach'; host: number }
  | { kind: 'reload'; host: number; keep: number; slots: number }
  | { kind: 'finish'; host: number; count: number; fail: boolean }
  | { kind: 'cancel'; job: number }
  | { kind: 'restart'; rejoin: boolean[] }
  | { kind: 'settle' };

const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('submit' as const), inputs: fc.integer({ min: 0, max: 16 }), open: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('append' as const), job: fc.nat(), inputs: fc.integer({ min: 0, max: 9 }), close: fc.boolean() }), weight: 2 },
  fc.record({ kind: fc.constant('connect' as const), slots: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('detach' as const), host: fc.nat() }),
  { arbitrary: fc.record({ kind: fc.constant('reload' as const), host: fc.nat(), keep: fc.nat(), slots: fc.integer({ min: 1, max: 3 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('finish' as const), host: fc.nat(), count: fc.integer({ min: 1, max: 4 }), fail: fc.boolean() }), weight: 6 },
  fc.record({ kind: fc.constant('cancel' as const), job: fc.nat() }),
  { arbitrary: fc.record({ kind: fc.constant('restart' as const), rejoin: fc.array(fc.boolean(), { maxLength: 4 }) }), weight: 2 },
  fc.record({ kind: fc.constant('settle' as const) }),
);

/** Every run starts with a few jobs and hosts, then mixes commands. */
const commands: fc.Arbitrary<Command[]> = fc
  .tuple(
    fc.array(fc.record({ kind: fc.constant('submit' as const), inputs: fc.integer({ min: 6, max: 24 }), open: fc.boolean() }), { minLength: 1, maxLength: 3 }),
    fc.array(fc.record({ kind: fc.constant('connect' as const), slots: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 3 }),
    fc.array(command, { minLength: 1, maxLength: 60 }),
  )
  .map(([jobs, hosts, rest]) => [...jobs, ...hosts, ...rest]);

interface ModelJob {
  id: string;
  inputs: number;
  open: boolean;
  cancelled: boolean;
}

interface ModelHost {
  id: string;
  slots: number;
  link: FakeHost;
  /** How much of what the coordinator sent it has been read. */
  read: number;
  /** tid → attempt: what it runs now. */
  held: Map<string, number>;
}

const input = (jobId: string, k: number) => `${jobId}:${k}`;
const result = (value: unknown) => `done ${String(value)}`;

/**
 * The scheduler and a model of what it must do, driven by the same commands. The model holds
 * who runs what: an attempt is leased only while no other attempt of the task is out, and ends
 * when its host reports it, is told to cancel it, or is lost (the host goes, reloads, or does not
 * come back after a restart).
 */
class World {
  store: SqliteStore;
  scheduler: Scheduler;
  readonly jobs: ModelJob[] = [];
  hosts: ModelHost[] = [];
  /** tid → the host whose attempt is out. */
  readonly out = new Map<string, { host: string; attempt: number }>();
  readonly inputsOf = new Map<string, unknown>();
  readonly leases = new Map<string, number>();
  /** tid → its latest attempt: a new attempt always has a higher number, across restarts too. */
  readonly attempts = new Map<string, number>();
  readonly window: number;
  #hostCount = 0;

  constructor(window: number) {
    this.window = window;
    const { store, scheduler } = schedulerHarness({ windowTasks: window, reconnectGraceMs: 0 });
    this.store = store;
    this.scheduler = scheduler;
  }

  async run(c: Command): Promise<void> {
    const { scheduler } = this;
    switch (c.kind) {
      case 'submit': {
        const id = `job${this.jobs.length}`;
        const inputs = Array.from({ length: c.inputs }, (_, k) => input(id, k));
        if (!c.open && !inputs.length) inputs.push(input(id, 0));
        scheduler.jobs.submit(spec(inputs, { open: c.open, maxAttempts: MAX_ATTEMPTS }), 'p', 'o', id);
        this.jobs.push({ id, inputs: inputs.length, open: c.open, cancelled: false });
        break;
      }
      case 'append': {
        const job = this.jobs.filter((j) => j.open)[c.job % Math.max(1, this.jobs.length)];
        const run = job && scheduler.jobs.job(job.id);
        if (!job || !run) break;
        scheduler.jobs.append(run, Array.from({ length: c.inputs }, (_, k) => input(job.id, job.inputs + k)));
        job.inputs += c.inputs;
        if (c.close) {
          scheduler.jobs.close(run);
          job.open = false;
        }
        break;
      }
      case 'connect': {
        const id = `h${this.#hostCount++}`;
        this.hosts.push({ id, slots: c.slots, link: connect(scheduler, id, c.slots), read: 0, held: new Map() });
        break;
      }
      case 'detach': {
        const host = this.hosts[c.host % Math.max(1, this.hosts.length)];
        if (!host) break;
        scheduler.hosts.detach(host.id, host.link);
        this.#forget(host, [...host.held.keys()]);
        this.hosts = this.hosts.filter((h) => h !== host);
        break;
      }
      case 'reload': {
        // The page came back, maybe with fewer slots, having lost some of its tasks (`keep`, a bit
        // for each, says which it kept): those run elsewhere.
        const host = this.hosts[c.host % Math.max(1, this.hosts.length)];
        if (!host) break;
        const held = [...host.held];
        const kept = held.filter((_, i) => (c.keep >> i) & 1);
        this.#forget(host, held.filter((entry) => !kept.includes(entry)).map(([tid]) => tid));
        host.slots = c.slots;
        host.link = connect(scheduler, host.id, host.slots, kept.map(([tid, attempt]) => ({ tid, attempt })));
        host.read = 0;
        break;
      }
      case 'finish': {
        const host = this.hosts[c.host % Math.max(1, this.hosts.length)];
        if (!host) break;
        const items = [...host.held].slice(0, c.count).map(([tid, attempt]) =>
          c.fail
            ? { tid, attempt, ok: false as const, error: { code: 'E_TASK_FAILED' as const, message: `${tid} failed` } }
            : { tid, attempt, ok: true as const, value: result(this.inputsOf.get(tid)) },
        );
        this.#forget(host, items.map((i) => i.tid));
        expect(scheduler.reports.outcomes(host.id, items)).toEqual([]);
        break;
      }
      case 'cancel': {
        const job = this.jobs[c.job % Math.max(1, this.jobs.length)];
        if (!job || !scheduler.jobs.job(job.id) || scheduler.jobs.job(job.id)!.stored.finishedAt !== null) break;
        scheduler.jobs.cancel(job.id);
        job.cancelled = true;
        job.open = false;
        break;
      }
      case 'restart':
        await this.restart(c.rejoin);
        break;
      case 'settle':
        break;
    }
    await settle();
    this.readFrames();
  }

  /** The coordinator stops (with everything it marked stored) and a new one starts over the same store. */
  async restart(rejoin: boolean[]): Promise<void> {
    await settle();
    this.readFrames();
    await this.scheduler.writes.durable();
    const { scheduler } = schedulerHarness({ store: this.store, windowTasks: this.window, reconnectGraceMs: 0 });
    this.scheduler = scheduler;
    await scheduler.restore();
    const back: ModelHost[] = [];
    this.hosts.forEach((host, i) => {
      if (rejoin[i] ?? true) {
        host.link = connect(scheduler, host.id, host.slots, [...host.held].map(([tid, attempt]) => ({ tid, attempt })));
        host.read = 0;
        back.push(host);
      } else {
        this.#forget(host, [...host.held.keys()]);
      }
    });
    this.hosts = back;
    // The reconnect grace (0 ms here) ends: what no host claimed runs elsewhere.
    await new Promise((resolve) => setTimeout(resolve, 2));
    await settle();
    this.readFrames();
  }

  /** What every host was sent since it was last read: assignments, cancels. */
  readFrames(): void {
    for (const host of this.hosts) {
      for (const message of host.link.sent.slice(host.read)) {
        if (message.type === 'assign') {
          for (const t of message.tasks) {
            expect(this.out.get(t.tid), `${t.tid} attempt ${t.attempt} leased while another attempt is out`).toBeUndefined();
            expect(t.attempt, `${t.tid} attempt numbers go up`).toBeGreaterThan(this.attempts.get(t.tid) ?? 0);
            this.attempts.set(t.tid, t.attempt);
            this.out.set(t.tid, { host: host.id, attempt: t.attempt });
            host.held.set(t.tid, t.attempt);
            this.inputsOf.set(t.tid, t.input);
            this.leases.set(t.tid, (this.leases.get(t.tid) ?? 0) + 1);
          }
        } else if (message.type === 'cancel') {
          for (const ref of message.tasks) if (host.held.get(ref.tid) === ref.attempt) this.#forget(host, [ref.tid]);
        }
      }
      host.read = host.link.sent.length;
    }
  }

  /**
   * Everything marked is stored and nothing is under way: memory and the rows must agree — a
   * cancelled job's once its rows are all marked (`swept`), which comes in parts after it ends.
   */
  async checkQuiet(swept = false): Promise<void> {
    for (let i = 0; i < 2; i++) {
      await settle();
      await this.scheduler.writes.durable();
    }
    await settle();
    this.readFrames();
    let held = 0;
    for (const host of this.hosts) held += host.held.size;
    let resident = 0;
    for (const job of this.jobs) {
      const run = this.scheduler.jobs.job(job.id);
      const status = await statusOf(this.scheduler, job.id);
      const counts = await this.store.taskCounts(job.id);
      if (!status) throw new Error(`no job ${job.id}`);
      if (swept || !job.cancelled) expect(status.tasks, `counts of ${job.id}`).toEqual(counts);
      expect(status.tasks.total).toBe(job.inputs);
      if (!run) continue;
      expect(run.window.waiting).toBeLessThanOrEqual(this.window);
      expect(run.resident.size, `tasks of ${job.id} in memory`).toBe(run.window.waiting + run.retries.length + run.placeNow.length + run.running);
      resident += run.resident.size;
    }
    const active = [...this.scheduler.jobs.active].length;
    expect(this.scheduler.jobs.size.tasks).toBe(resident);
    expect(resident).toBeLessThanOrEqual(active * this.window + held + this.retrying());
  }

  retrying(): number {
    return [...this.scheduler.jobs.active].reduce((n, job) => n + job.retries.length, 0);
  }

  /** Every job is closed and one steady host completes everything still out until every job has ended. */
  async drain(): Promise<void> {
    for (const job of this.jobs) {
      const run = this.scheduler.jobs.job(job.id);
      if (run && job.open) this.scheduler.jobs.close(run);
      job.open = false;
    }
    await this.run({ kind: 'connect', slots: 3 });
    for (let round = 0; round < 500 && this.jobs.some((j) => this.scheduler.jobs.job(j.id)); round++) {
      for (const host of this.hosts) await this.run({ kind: 'finish', host: this.hosts.indexOf(host), count: 100, fail: false });
      await this.run({ kind: 'settle' });
    }
  }

  #forget(host: ModelHost, tids: string[]): void {
    for (const tid of tids) {
      if (this.out.get(tid)?.host === host.id) this.out.delete(tid);
      host.held.delete(tid);
    }
  }
}

describe('the task window', () => {
  it('leases every task, none twice at once, and stores each root outcome once, across window moves and restarts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...WINDOWS), commands, async (window, run) => {
        const world = new World(window);
        for (const c of run) await world.run(c);
        await world.checkQuiet();
        await world.drain();
        await world.checkQuiet(true);

        for (const job of world.jobs) {
          const status = await statusOf(world.scheduler, job.id);
          const lines = await world.store.outcomesAfter(job.id, 0, 1_000_000);
          // cursors 1, 2, 3, … with no gap, each root at most once
          expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
          expect(new Set(lines.map((l) => l.root)).size).toBe(lines.length);
          for (const line of lines) {
            if (line.ok) expect(line.result).toBe(result(input(job.id, line.root)));
            else expect(line.error?.code).toMatch(/^E_(TASK_FAILED|INTERNAL)$/);
          }
          const failed = lines.filter((l) => !l.ok).length;
          if (job.cancelled) {
            expect(status?.state).toBe('cancelled');
            expect(status?.tasks.pending).toBe(0);
          } else {
            // every root ended, with its outcome stored once
            expect(lines.map((l) => l.root).sort((a, b) => a - b)).toEqual(Array.from({ length: job.inputs }, (_, i) => i));
            expect(status).toMatchObject({ state: failed ? 'failed' : 'done', tasks: { total: job.inputs, done: job.inputs - failed, failed, pending: 0, running: 0 } });
          }
        }
        // every root of a job that was not cancelled was leased at least once (bag roots have tids job.0, job.1, …)
        for (const job of world.jobs.filter((j) => !j.cancelled)) {
          for (let k = 0; k < job.inputs; k++) expect(world.leases.get(`${job.id}.${k}`), `${job.id}.${k}`).toBeGreaterThan(0);
        }
      }),
      { numRuns: 200 },
    );
  }, 120_000);
});
