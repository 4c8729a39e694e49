import type { MigrationEvent } from '@webpvm/vm-protocol';
import type { Logger } from 'pino';
import type { MigrationSink } from './scheduler/ports.ts';
import type { EventQuery, Store } from './store/store.ts';
import { WriteQueue } from './write-queue.ts';

/** Enough to answer reconnecting event streams and busy jobs' timelines without reading the store. */
const RECENT_EVENTS = 10_000;

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

  private constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private lastId: number,
    private readonly capacity: number,
  ) {
    this.storeOnlyUpTo = lastId;
    this.writes = new WriteQueue(
      () => this.write(),
      (error) => log.error({ err: error }, 'storing migration events failed; retrying'),
    );
  }

  /** Ids go on after the largest one stored, so that they stay unique across restarts. */
  static async open(store: Store, log: Logger, capacity = RECENT_EVENTS): Promise<EventLog> {
    return new EventLog(store, log, await store.lastEventId(), capacity);
  }

  record(fields: Omit<MigrationEvent, 'id'>): void {
    const event: MigrationEvent = { id: ++this.lastId, ...fields };
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
