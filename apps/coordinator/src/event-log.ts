import type { MigrationEvent } from '@webpvm/vm-protocol';
import type { Logger } from 'pino';
import type { MigrationSink } from './scheduler/ports.ts';
import type { EventQuery, Store } from './store/store.ts';
import { WriteQueue } from './write-queue.ts';

/** Enough to answer reconnecting event streams and busy jobs' timelines without reading the store. */
const RECENT_EVENTS = 10_000;

/** Blocks of `size` event ids, each given to one coordinator only (job-leases.ts `eventIdBlock`). */
export interface IdBlocks {
  size: number;
  next(): Promise<number>;
}

/** A live listener, e.g. one `GET /api/events` stream. */
export interface EventSubscriber {
  event(event: MigrationEvent): void;
  /** The log is closing: the coordinator stops, and a stream left open would hold its shutdown. */
  end(): void;
}

/**
 * Every migration the scheduler finishes, numbered in order: kept for the dashboard and for
 * event streams, handed to subscribers as it happens, and written behind to the store in batches.
 */
export class EventLog implements MigrationSink {
  private readonly recent: MigrationEvent[] = [];
  /** Events with ids up to this one may be only in the store: the memory holds every later one. */
  private storeOnlyUpTo: number;
  private unwritten: MigrationEvent[] = [];
  private readonly writes: WriteQueue;
  private readonly subscribers = new Set<EventSubscriber>();
  private closed = false;
  /** With several coordinators: the last id of the block in use, and the next block once asked for (null: not yet). */
  private blockEnd = Infinity;
  private nextBlock: Promise<number | null> | null = null;
  private nextBlockFirst: number | null = null;

  private constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private lastId: number,
    private readonly capacity: number,
    private readonly blocks: IdBlocks | null,
  ) {
    this.storeOnlyUpTo = lastId;
    this.writes = new WriteQueue(
      () => this.write(),
      (error) => log.error({ err: error }, 'storing migration events failed; retrying'),
    );
  }

  /**
   * Ids go on after the largest one stored, so that they stay unique across restarts; with several
   * coordinators on one store (`blocks`), each takes blocks of ids no other gets.
   */
  static async open(store: Store, log: Logger, capacity = RECENT_EVENTS, blocks: IdBlocks | null = null): Promise<EventLog> {
    if (!blocks) return new EventLog(store, log, await store.lastEventId(), capacity, null);
    const first = await blocks.next();
    const events = new EventLog(store, log, first - 1, capacity, blocks);
    events.blockEnd = first + blocks.size - 1;
    return events;
  }

  record(fields: Omit<MigrationEvent, 'id'>): void {
    if (!this.takeId()) {
      this.log.error({ event: fields.type, job: fields.jobId }, 'no event id left in this coordinator’s block (the store did not give the next one): event dropped');
      return;
    }
    const event: MigrationEvent = { id: this.lastId, ...fields };
    this.recent.push(event);
    if (this.recent.length > this.capacity) this.storeOnlyUpTo = this.recent.shift()!.id;
    this.unwritten.push(event);
    this.writes.schedule();
    for (const subscriber of this.subscribers) {
      try {
        subscriber.event(event);
      } catch (error) {
        // One broken listener must not keep the others, or the scheduler that records, from going on.
        this.log.warn({ err: error }, 'event subscriber failed; dropped');
        this.subscribers.delete(subscriber);
      }
    }
  }

  /** Moves `lastId` to the next free id: false when a block ran out before the store gave the next. */
  private takeId(): boolean {
    const blocks = this.blocks;
    if (!blocks) {
      this.lastId++;
      return true;
    }
    // Half a block ahead, the next is asked for: it comes long before this one runs out.
    if (!this.nextBlock && this.blockEnd - this.lastId <= blocks.size / 2) {
      this.nextBlock = blocks.next().then(
        (first) => (this.nextBlockFirst = first),
        (error: unknown) => {
          this.log.error({ err: error }, 'taking a block of event ids failed; asking again');
          this.nextBlock = null;
          return null;
        },
      );
    }
    if (this.lastId < this.blockEnd) {
      this.lastId++;
      return true;
    }
    if (this.nextBlockFirst === null) return false;
    this.lastId = this.nextBlockFirst;
    this.blockEnd = this.nextBlockFirst + blocks.size - 1;
    this.nextBlock = null;
    this.nextBlockFirst = null;
    return true;
  }

  /** Returns the unsubscribe function. A subscriber arriving after close is ended at once. */
  subscribe(subscriber: EventSubscriber): () => void {
    if (this.closed) {
      subscriber.end();
      return () => undefined;
    }
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  /** Events as the store would list them, including those not written yet; from memory when it holds them all. */
  async list(query: EventQuery): Promise<MigrationEvent[]> {
    const remembered = this.fromMemory(query);
    if (remembered) return remembered;
    await this.writes.flushed();
    return this.store.listEvents(query);
  }

  /** Ends every subscriber and resolves once every event recorded so far is stored. */
  async close(): Promise<void> {
    this.closed = true;
    for (const subscriber of this.subscribers) subscriber.end();
    this.subscribers.clear();
    await this.writes.flushed();
  }

  /** Null when the answer may need events only the store has; memory knows no job owners. */
  private fromMemory(query: EventQuery): MigrationEvent[] | null {
    if (query.owner !== null) return null;
    const matches = this.recent.filter((e) => (query.jobId === null || e.jobId === query.jobId) && e.id > (query.afterId ?? 0));
    if (query.afterId !== null) return query.afterId >= this.storeOnlyUpTo ? matches.slice(0, query.limit) : null;
    return matches.length >= query.limit || this.storeOnlyUpTo === 0 ? matches.slice(-query.limit) : null;
  }

  private async write(): Promise<void> {
    const batch = this.unwritten;
    if (batch.length === 0) return;
    this.unwritten = [];
    try {
      await this.store.appendEvents(batch);
    } catch (error) {
      this.unwritten = batch.concat(this.unwritten);
      throw error;
    }
  }
}
