import type { Checkpoint, CoordinatorMessageOf, HostMessage, TaskOutcome, TaskRef } from '@webpvm/vm-protocol';
import { forgetCheckpoint, pruneCheckpoints, saveCheckpoint } from './checkpoint-store.ts';
import { CoordinatorLink, type ConnectionState, type SocketLike } from './coordinator-link.ts';
import { CoordinatorOutbox } from './coordinator-outbox.ts';
import type { HostOptions } from './host-options.ts';
import type { KeyValueStore } from './kv-store.ts';
import { LogLimiter } from './log-limiter.ts';
import { FrameKind } from './messaging/channel-frames.ts';
import { Inboxes } from './messaging/inboxes.ts';
import { PeerNetwork, type CreatePeer } from './messaging/peer-network.ts';
import { MessageRouter, type MessageCounters } from './messaging/router.ts';
import { PendingResults } from './pending-results.ts';
import { ProgressBatcher } from './progress-batcher.ts';
import { SlotPool, type RunningTaskView } from './slot-pool.ts';
import type { SpawnTaskWorker } from './task-worker-handle.ts';
import { wireValueProblem } from './wire-value.ts';

/** What the page shows and what tests read through `globalThis.__webpvmHost.snapshot()`. */
export interface HostSnapshot {
  connection: ConnectionState;
  hostId: string | null;
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
}

export interface HostRuntimeOptions {
  options: HostOptions;
  store: KeyValueStore;
  spawn: SpawnTaskWorker;
  url: string;
  userAgent: string;
  createSocket?: (url: string) => SocketLike;
  /** Data channels between hosts; without it (or with `?p2p=off`) messages between hosts go through the relay. */
  createPeer?: CreatePeer;
}

/** The UI re-renders at most this often, however chatty the tasks' progress is. */
const NOTIFY_MS = 100;

/**
 * One volunteer host: the coordinator link, the slot pool and the durable outbox wired together.
 * Every step that must survive an outage writes to IndexedDB before it sends.
 */
export class HostRuntime {
  #options: HostOptions;
  #store: KeyValueStore;
  #link: CoordinatorLink;
  #pool: SlotPool;
  #pending: PendingResults;
  #progress: ProgressBatcher;
  #outbox: CoordinatorOutbox;
  #inboxes: Inboxes;
  #network: PeerNetwork | null;
  #router: MessageRouter;
  #logs = new LogLimiter();
  /** Checkpoints stored while offline, sent after the next welcome. */
  #unsentCheckpoints = new Map<string, { ref: TaskRef; checkpoint: Checkpoint }>();
  #done = 0;
  #failed = 0;
  #listeners = new Set<() => void>();
  #notifyTimer: ReturnType<typeof setTimeout> | null = null;
  #current: HostSnapshot;

  constructor(runtime: HostRuntimeOptions) {
    this.#options = runtime.options;
    this.#store = runtime.store;
    const send = (message: HostMessage) => this.#link.send(message);
    this.#pending = new PendingResults(runtime.store, send);
    this.#progress = new ProgressBatcher(send);
    this.#outbox = new CoordinatorOutbox((frame) => (frame instanceof Uint8Array ? this.#link.sendBinary(frame) : send(frame)));
    this.#inboxes = new Inboxes({
      holds: (tid) => this.#pool.holds(tid),
      post: (tid, messages) => this.#pool.post(tid, { type: 'deliver', tid, messages }),
      delivered: (tid, count) => {
        const ref = this.#pool.refOf(tid);
        if (ref) this.#progress.countIn(ref, count);
      },
    });
    this.#network =
      runtime.options.p2p && runtime.createPeer
        ? new PeerNetwork({
            createPeer: runtime.createPeer,
            events: {
              frame: (link, frame) => {
                if (frame.kind === FrameKind.envelope) this.#router.receive(frame.payload, link);
                else this.#router.bounced(link, frame.payload);
              },
              broken: (link) => this.#router.linkBroken(link),
              change: () => this.#scheduleNotify(),
            },
          })
        : null;
    this.#router = new MessageRouter({
      inbox: this.#inboxes,
      relay: (bytes) => this.#outbox.send(bytes),
      locate: (tids) => send({ type: 'locate', tids }),
      links: this.#network,
    });
    this.#pool = new SlotPool({
      slots: runtime.options.slots,
      spawn: runtime.spawn,
      checkpointIntervalMs: () => this.#link.checkpointIntervalMs,
      events: {
        outcome: (outcome) => this.#onOutcome(outcome),
        checkpoint: (ref, checkpoint) => this.#onCheckpoint(ref, checkpoint),
        progress: (ref, fraction) => this.#progress.record(ref, fraction),
        log: (ref, line) => {
          if (this.#logs.allow(ref.tid, performance.now())) send({ type: 'log', tid: ref.tid, attempt: ref.attempt, line });
        },
        started: (ref) => this.#inboxes.started(ref.tid),
        send: (ref, message) => {
          this.#progress.countOut(ref);
          this.#router.send(message);
          this.#scheduleNotify();
        },
        request: (ref, requestId, op) => this.#outbox.send({ type: 'request', tid: ref.tid, attempt: ref.attempt, requestId, op }),
        change: () => this.#scheduleNotify(),
      },
    });
    this.#link = new CoordinatorLink({
      url: runtime.url,
      slots: runtime.options.slots,
      userAgent: runtime.userAgent,
      store: runtime.store,
      heldTasks: () => this.#pool.held(),
      createSocket: runtime.createSocket,
      events: {
        welcome: (m) => this.#onWelcome(m),
        assign: (m) => this.#pool.assign(m.tasks),
        cancel: (m) => this.#onCancel(m.tasks),
        ack: (m) => this.#onAck(m.tasks),
        reply: (m) => this.#pool.post(m.tid, m),
        routes: (m) => this.#router.onRoutes(m.routes),
        relay: (bytes) => {
          this.#router.receive(bytes, null);
          this.#scheduleNotify();
        },
        stateChange: () => this.#scheduleNotify(),
      },
    });
    this.#current = this.snapshot();
  }

  async start(): Promise<void> {
    await this.#pending.load();
    await pruneCheckpoints(this.#store, this.#pending.tids());
    await this.#link.start();
  }

  stop(): void {
    this.#link.stop();
    this.#network?.stop();
    this.#router.stop();
    this.#pool.terminateAll();
    this.#progress.stop();
    if (this.#notifyTimer) clearTimeout(this.#notifyTimer);
  }

  snapshot(): HostSnapshot {
    return {
      connection: this.#link.state,
      hostId: this.#link.hostId,
      slots: this.#options.slots,
      policy: this.#options.policy,
      running: this.#pool.running(),
      queued: this.#pool.queued,
      done: this.#done,
      failed: this.#failed,
      pendingResults: this.#pending.count,
      workersStarted: this.#pool.workersStarted,
      messages: { ...this.#router.counters, channelsOpen: this.#network?.openCount ?? 0 },
    };
  }

  /** For React's useSyncExternalStore: the same object until something changed. */
  readonly current = (): HostSnapshot => this.#current;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  #onWelcome(welcome: CoordinatorMessageOf<'welcome'>): void {
    this.#network?.setIdentity(welcome.peerId, welcome.iceServers);
    this.#outbox.flush();
    void this.#pending.resendAll().catch((error: unknown) => console.warn('webpvm: could not resend results', error));
    const held = this.#pool.held();
    for (const [tid, { ref, checkpoint }] of this.#unsentCheckpoints) {
      this.#unsentCheckpoints.delete(tid);
      if (held.some((h) => h.tid === ref.tid && h.attempt === ref.attempt)) this.#sendCheckpoint(ref, checkpoint);
    }
    this.#scheduleNotify();
  }

  #onOutcome(raw: TaskOutcome): void {
    const sent = this.#router.sentBy(raw.tid);
    const outcome = this.#toWire(raw, sent.length ? { sent } : {});
    if (outcome.ok) this.#done += 1;
    else this.#failed += 1;
    this.#router.taskEnded(outcome.tid, outcome.ok);
    this.#forgetLive(outcome.tid);
    this.#pending.add(outcome);
    this.#scheduleNotify();
  }

  #toWire(outcome: TaskOutcome, sent: Pick<TaskOutcome, 'sent'>): TaskOutcome {
    const { tid, attempt } = outcome;
    if (!outcome.ok) return { tid, attempt, ok: false, error: outcome.error, ...sent };
    const value = outcome.value === undefined ? null : outcome.value;
    const problem = wireValueProblem(value, 'result');
    return problem ? { tid, attempt, ok: false, error: problem, ...sent } : { tid, attempt, ok: true, value, ...sent };
  }

  #onCheckpoint(ref: TaskRef, checkpoint: Checkpoint): void {
    const problem = wireValueProblem(checkpoint, 'checkpoint');
    if (problem) {
      this.#pool.fail(ref, problem);
      return;
    }
    saveCheckpoint(this.#store, ref, checkpoint)
      .catch((error: unknown) => console.warn('webpvm: could not store a checkpoint', error))
      .then(() => {
        if (this.#pool.held().some((h) => h.tid === ref.tid && h.attempt === ref.attempt)) this.#sendCheckpoint(ref, checkpoint);
      });
  }

  #sendCheckpoint(ref: TaskRef, checkpoint: Checkpoint): void {
    const sent = this.#link.send({ type: 'checkpoint', tid: ref.tid, attempt: ref.attempt, checkpoint });
    if (sent) this.#unsentCheckpoints.delete(ref.tid);
    else this.#unsentCheckpoints.set(ref.tid, { ref, checkpoint });
  }

  #onCancel(refs: TaskRef[]): void {
    this.#pool.cancel(refs);
    for (const ref of refs) {
      // A cancel of an older attempt leaves the one running now alone.
      if (!this.#pool.holds(ref.tid)) {
        this.#router.taskEnded(ref.tid, false);
        this.#forgetLive(ref.tid);
      }
      void forgetCheckpoint(this.#store, ref).catch(() => undefined);
    }
  }

  async #onAck(refs: TaskRef[]): Promise<void> {
    try {
      await this.#pending.ack(refs);
      await Promise.all(refs.map((ref) => forgetCheckpoint(this.#store, ref)));
    } catch (error) {
      console.warn('webpvm: could not forget acknowledged results', error);
    }
    this.#scheduleNotify();
  }

  #forgetLive(tid: string): void {
    this.#inboxes.close(tid);
    this.#outbox.dropRequestsOf(tid);
    this.#progress.forget(tid);
    this.#logs.forget(tid);
    this.#unsentCheckpoints.delete(tid);
  }

  #scheduleNotify(): void {
    this.#notifyTimer ??= setTimeout(() => {
      this.#notifyTimer = null;
      this.#current = this.snapshot();
      for (const listener of this.#listeners) listener();
    }, NOTIFY_MS);
  }
}
