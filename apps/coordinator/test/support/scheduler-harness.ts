import { type CoordinatorMessage, type MigrationEvent, SubmitJobRequest, type TaskAssignment, type TaskRef, decodeEnvelope } from '@webpvm/vm-protocol';
import pino from 'pino';
import type { HostLink } from '../../src/scheduler/ports.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Lets leasing and write-behind (each waiting for the next turn of the event loop) run their course. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await turn();
}

/** A host's end of its connection: records everything the coordinator sends it, in order. */
export class FakeHost implements HostLink {
  readonly sent: CoordinatorMessage[] = [];
  readonly binary: Uint8Array[] = [];
  /** Frame types in the order they were sent: images must come before the assignment naming them. */
  readonly order: string[] = [];

  send(message: CoordinatorMessage): void {
    this.sent.push(message);
    this.order.push(message.type);
  }

  sendBinary(bytes: Uint8Array): void {
    this.binary.push(bytes);
    const decoded = decodeEnvelope(bytes);
    this.order.push(decoded.ok ? decoded.value.header.type : 'bad');
  }

  assigned(): TaskAssignment[] {
    return this.sent.flatMap((m) => (m.type === 'assign' ? m.tasks : []));
  }

  of<T extends CoordinatorMessage['type']>(type: T): Extract<CoordinatorMessage, { type: T }>[] {
    return this.sent.filter((m): m is Extract<CoordinatorMessage, { type: T }> => m.type === type);
  }

  /** The token of the latest relay lane end of that kind given to this host. */
  token(end: 'out' | 'in'): string {
    const lane = this.of('lane').findLast((m) => m.end === end);
    if (!lane) throw new Error(`no ${end} end was given`);
    return lane.token;
  }
}

/**
 * The scheduler's clocks in tests, moved by hand: `now` is time passing, on both clocks; `jump`
 * moves the wall clock alone, as an NTP step or a VM resumed would.
 */
export const clock = { now: 1_000_000, jump: 0 };

const stores: SqliteStore[] = [];

/** Closes the stores of every scheduler made since the last call (an afterEach hook). */
export async function closeSchedulers(): Promise<void> {
  for (const store of stores.splice(0)) await store.close();
}

/** A scheduler over an in-memory store (or `store`, to restart on one), with the test clock. */
export function schedulerHarness(
  options: { store?: SqliteStore; reconnectGraceMs?: number; disconnectGraceMs?: number; windowTasks?: number; leaseFloorMs?: number; random?: () => number; heldMs?: number } = {},
) {
  const store = options.store ?? new SqliteStore(':memory:');
  // A store passed in is its caller's: a restart test hands the first scheduler's to a second.
  if (!options.store) stores.push(store);
  const events: Omit<MigrationEvent, 'id'>[] = [];
  const scheduler = new Scheduler({
    store,
    log: pino({ level: 'silent' }),
    checkpointIntervalMs: 0,
    reconnectGraceMs: options.reconnectGraceMs ?? 60_000,
    // A host detached in these tests is gone for good, unless a test gives it time to come back.
    disconnectGraceMs: options.disconnectGraceMs ?? 0,
    programUrl: (hash) => `/programs/${hash}.js`,
    now: () => clock.now + clock.jump,
    monotonic: () => clock.now,
    migrations: { record: (event) => events.push(event) },
    ...(options.windowTasks === undefined ? {} : { windowTasks: options.windowTasks }),
    ...(options.leaseFloorMs === undefined ? {} : { leaseFloorMs: options.leaseFloorMs }),
    ...(options.random === undefined ? {} : { random: options.random }),
    ...(options.heldMs === undefined ? {} : { heldMs: options.heldMs }),
  });
  return { store, scheduler, events };
}

/** A host says hello with `slots` free and these attempts still running; each host is a volunteer of its own unless told. */
export function connect(scheduler: Scheduler, hostId: string, slots: number, running: TaskRef[] = [], volunteerId = `v-${hostId}`, address = `10.0.0.${hostId}`): FakeHost {
  const link = new FakeHost();
  scheduler.hosts.attach({ hostId, secretHash: 'h', createdAt: clock.now, userAgent: 'test', peerId: `${hostId}-peer`, volunteerId, address }, link, slots, running);
  return link;
}

/** A job's status, in memory or (finished and stored) in the store. */
export async function statusOf(scheduler: Scheduler, jobId: string) {
  return (await scheduler.views.job(jobId))?.status;
}

/** Every result of a job in input order (null where its task is not done), as stored. */
export async function resultsOf(store: SqliteStore, jobId: string): Promise<unknown[]> {
  return (await store.resultsInOrder(jobId, -1, Number.MAX_SAFE_INTEGER)).map((r) => r.result);
}

/** A job request as the API would parse it: a bag of `inputs` for a program that returns its input. */
export const spec = (inputs: unknown[], extra: Record<string, unknown> = {}) =>
  SubmitJobRequest.parse({ program: 'export default (c, x) => x', inputs, ...extra });
