import {
  ImageAssembly,
  LIMITS,
  RELAY_LANE_PATH,
  decodeImage,
  encodeImage,
  imageParts,
  type Checkpoint,
  type CoordinatorMessageOf,
  type HostMessage,
  type MigrationReason,
  type SealedMessage,
  type TaskAssignment,
  type TaskOutcome,
  type TaskRef,
} from '@webpvm/vm-protocol';
import { forgetCheckpoint, pruneCheckpoints, saveCheckpoint } from './checkpoint-store.ts';
import { CoordinatorLink, type ConnectionState, type SocketLike } from './coordinator-link.ts';
import { CoordinatorOutbox } from './coordinator-outbox.ts';
import type { HostOptions } from './host-options.ts';
import type { KeyValueStore } from './kv-store.ts';
import { LogLimiter } from './log-limiter.ts';
import { FrameKind } from './messaging/channel-frames.ts';
import { Inboxes } from './messaging/inboxes.ts';
import { Lanes } from './messaging/lanes.ts';
import { RelayLanes } from './messaging/relay-lanes.ts';
import { PeerNetwork, type CreatePeer } from './messaging/peer-network.ts';
import { MessageRouter, type MessageCounters } from './messaging/router.ts';
import { PendingResults } from './pending-results.ts';
import { ProgressBatcher } from './progress-batcher.ts';
import { SlotPool, type LeftTask, type RunningTaskView, type StartExtras, type WorkerCheckpoint } from './slot-pool.ts';
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
  /** True while the person at the machine uses it: no task runs here and no slot is offered. */
  paused: boolean;
  pauseReason: MigrationReason | null;
  /** Web Workers alive on this page, busy or idle. */
  workersAlive: number;
  /** Tasks that left this page for another host, and tasks that arrived from one, since it loaded. */
  migrations: { out: number; in: number };
  /** The last reclaim: from its event until no worker was left on this page (null while some still run). */
  lastReclaim: { reason: MigrationReason; clearedMs: number | null } | null;
}

/** How long a task gets to reach a safe point before its worker is terminated (DESIGN.md, Migration). */
export const FREEZE_GRACE_MS = 20;

/** How long an image sent over a data channel is kept, to send it again through the coordinator. */
const KEEP_SENT_IMAGE_MS = 20_000;
/** How long a cut image waits for the coordinator to name its destination before it goes through the coordinator. */
const DESTINATION_WAIT_MS = 250;
/** How long an assignment waits for its image over a data channel before asking for it through the coordinator, twice. */
const IMAGE_WAIT_MS = 5_000;

/**
 * With data channels, a pair goes through the relay this long before it asks for a relay lane:
 * time for a channel to open, whose own lane then takes the pair.
 */
const RELAY_LANE_PATIENCE_MS = 3_000;

/** Where a task's worker opens the relay lane end issued with `token`: the coordinator socket's origin. */
function relayLaneUrl(socketUrl: string, token: string): string {
  const url = new URL(socketUrl);
  url.pathname = RELAY_LANE_PATH;
  url.search = `?token=${token}`;
  return url.href;
}

/** The checkpoint a local task would restart from, and the byte segments of its state. */
interface LatestCheckpoint {
  checkpoint: Required<Checkpoint>;
  stateBuffers: Uint8Array[];
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
  /** Freezes are raised in shared memory (the page is cross-origin isolated). */
  sharedFlags?: boolean;
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
  #lanes: Lanes | null;
  #relayLanes: RelayLanes;
  #router: MessageRouter;
  #logs = new LogLimiter();
  /** Checkpoints stored while offline, sent after the next welcome. */
  #unsentCheckpoints = new Map<string, { ref: TaskRef; checkpoint: Checkpoint }>();
  /** Per local task, the checkpoint its inbox log is relative to (see Inboxes.checkpointed). */
  #latest = new Map<string, LatestCheckpoint>();
  #images = new ImageAssembly(LIMITS.imageBytes * 2);
  /** Tasks that arrived with an image and have not told the coordinator they run again. */
  #arriving = new Set<string>();
  /** Where each leaving task will run next (the coordinator's `destination`), so its image can go there directly. */
  #destinations = new Map<string, { attempt: number; peerId: string | null }>();
  /** Images cut before their destination was named: they wait for it a little. */
  #unshipped = new Map<string, { ship: (destination: { attempt: number; peerId: string | null } | null) => void; timer: ReturnType<typeof setTimeout> }>();
  /** Images this page sent over data channels, kept a while in case they must go again through the coordinator. */
  #sentImages = new Map<string, { image: Uint8Array; timer: ReturnType<typeof setTimeout> }>();
  /** Assignments whose image is still on its way over a data channel, by `tid#attempt`. */
  #awaitingImage = new Map<string, { task: TaskAssignment; timer: ReturnType<typeof setTimeout>; asked: boolean }>();
  #paused = false;
  /** The page is going away: its data channels close with it, so images go through the coordinator. */
  #departing = false;
  #pauseReason: MigrationReason | null = null;
  #lastReclaim: { reason: MigrationReason; at: number; clearedMs: number | null } | null = null;
  #migrations = { out: 0, in: 0 };
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
      keepLog: runtime.options.replayLog,
      // A task waiting for its image is this page's already: its messages wait here too.
      holds: (tid) => this.#pool.holds(tid) || this.#waitsForImage(tid),
      post: (tid, messages) => {
        const envelopes = messages.map(workerCopy);
        return this.#pool.post(tid, { type: 'deliver', tid, envelopes }, envelopes.map((e) => e.buffer));
      },
      delivered: (tid, count) => {
        const ref = this.#pool.refOf(tid);
        if (ref) this.#progress.countIn(ref, count);
      },
      held: (tid) => this.#pool.post(tid, { type: 'report-now', tid }),
    });
    this.#network =
      runtime.options.p2p && runtime.createPeer
        ? new PeerNetwork({
            createPeer: runtime.createPeer,
            events: {
              frame: (link, frame) => {
                if (frame.kind === FrameKind.envelope) this.#router.receive(frame.payload, link);
                else if (frame.kind === FrameKind.bounce) this.#router.bounced(link, frame.payload);
                else this.#lanes?.control(link, frame.payload);
              },
              broken: (link) => {
                this.#lanes?.carrierBroken(link);
                this.#router.linkBroken(link);
              },
              change: () => this.#scheduleNotify(),
            },
          })
        : null;
    const network = this.#network;
    this.#lanes = network
      ? new Lanes({
          carrier: (peerId) => network.carrier(peerId),
          giveOut: (pair, end) => this.#pool.giveLane({ type: 'lane-out', tid: pair.from, to: pair.to, channel: end }),
          giveIn: (pair, end) => this.#pool.giveLane({ type: 'lane-in', tid: pair.to, from: pair.from, channel: end }),
          // The worker closes its end and reports it (laneClosed below); without a worker, what it wrote goes now.
          gone: (pair) => {
            if (!this.#pool.post(pair.from, { type: 'lane-close', tid: pair.from, to: pair.to })) this.#router.laneClosed(pair);
          },
        })
      : null;
    this.#relayLanes = new RelayLanes({
      ask: (pair) => send({ type: 'lane-open', ...pair }),
      decline: (token) => send({ type: 'lane-declined', token }),
      giveOut: (pair, token) => this.#pool.post(pair.from, { type: 'relay-lane-out', tid: pair.from, to: pair.to, url: relayLaneUrl(runtime.url, token) }),
      giveIn: (pair, token) => this.#pool.post(pair.to, { type: 'relay-lane-in', tid: pair.to, from: pair.from, url: relayLaneUrl(runtime.url, token) }),
      patienceMs: network ? RELAY_LANE_PATIENCE_MS : 0,
    });
    this.#router = new MessageRouter({
      inbox: this.#inboxes,
      relay: (bytes) => this.#outbox.send(bytes),
      locate: (tids) => send({ type: 'locate', tids }),
      links: this.#network,
      lanes: this.#lanes,
      relayLanes: this.#relayLanes,
      part: (header, bytes) => {
        const problem = this.#images.add(header, bytes);
        if (problem) console.warn(`webpvm: dropped an image part: ${problem.message}`);
        const waiting = this.#awaitingImage.get(`${header.tid}#${header.attempt}`);
        if (waiting && header.index === header.count - 1) this.#onAssign([waiting.task]);
      },
    });
    this.#pool = new SlotPool({
      slots: runtime.options.slots,
      spawn: runtime.spawn,
      checkpointIntervalMs: () => this.#link.checkpointIntervalMs,
      sharedFlags: runtime.sharedFlags ?? false,
      events: {
        outcome: (outcome) => this.#onOutcome(outcome),
        checkpoint: (ref, checkpoint) => this.#onCheckpoint(ref, checkpoint),
        left: (task) => this.#onLeft(task),
        progress: (ref, fraction) => this.#progress.record(ref, fraction),
        log: (ref, line) => {
          if (this.#logs.allow(ref.tid, performance.now())) send({ type: 'log', tid: ref.tid, attempt: ref.attempt, line });
        },
        started: (ref) => {
          this.#inboxes.started(ref.tid);
          if (this.#arriving.delete(ref.tid)) this.#outbox.send({ type: 'resumed', tid: ref.tid, attempt: ref.attempt });
        },
        send: (ref, message) => {
          this.#progress.countOut(ref);
          this.#router.send(message);
          this.#scheduleNotify();
        },
        laneSent: (ref, message, bytes) => {
          this.#progress.countOut(ref);
          const carrier = this.#relayLanes.sends(message) ? this.#router.relayLink : (this.#lanes?.carrierOf(message) ?? null);
          this.#router.laneSent(message, bytes, carrier);
          this.#scheduleNotify();
        },
        delivered: (ref, entries) => {
          const fromLanes = this.#inboxes.reported(ref.tid, entries);
          for (const message of fromLanes) {
            const pair = { from: message.from, to: ref.tid };
            const carrier = this.#relayLanes.receives(pair) ? this.#router.relayLink : (this.#lanes?.carrierIn(pair) ?? null);
            this.#router.laneReceived(message, carrier);
          }
          if (fromLanes.length) this.#progress.countIn(ref, fromLanes.length);
        },
        laneClosed: (ref, to) => {
          this.#lanes?.closed({ from: ref.tid, to });
          this.#relayLanes.closed({ from: ref.tid, to });
          this.#router.laneClosed({ from: ref.tid, to });
        },
        request: (ref, requestId, op) => this.#outbox.send({ type: 'request', tid: ref.tid, attempt: ref.attempt, requestId, op }),
        change: () => this.#scheduleNotify(),
      },
    });
    this.#link = new CoordinatorLink({
      url: runtime.url,
      slots: () => (this.#paused ? 0 : runtime.options.slots),
      userAgent: runtime.userAgent,
      store: runtime.store,
      heldTasks: () => this.#pool.held(),
      createSocket: runtime.createSocket,
      events: {
        welcome: (m) => this.#onWelcome(m),
        assign: (m) => this.#onAssign(m.tasks),
        cancel: (m) => this.#onCancel(m.tasks),
        ack: (m) => this.#onAck(m.tasks),
        reply: (m) => this.#pool.post(m.tid, m),
        routes: (m) => this.#router.onRoutes(m.routes),
        migrate: (m) => this.#evacuate(new Set(m.tasks.map((t) => t.tid)), 'order', FREEZE_GRACE_MS),
        peerGone: (m) => this.#network?.gone(m.peerId),
        destination: (m) => {
          const waiting = this.#unshipped.get(m.tid);
          if (!waiting) {
            this.#destinations.set(m.tid, { attempt: m.attempt, peerId: m.peerId });
            return;
          }
          clearTimeout(waiting.timer);
          this.#unshipped.delete(m.tid);
          waiting.ship(m);
        },
        sendImage: (m) => {
          const kept = this.#sentImages.get(m.tid);
          if (kept) for (const part of imageParts(m.tid, m.attempt, kept.image)) this.#outbox.send(part);
        },
        relay: (bytes) => {
          this.#router.receive(bytes, null);
          this.#scheduleNotify();
        },
        lane: (m) => this.#relayLanes.granted(m),
        laneRefused: (m) => this.#relayLanes.refused(m),
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
    for (const { timer } of [...this.#sentImages.values(), ...this.#awaitingImage.values(), ...this.#unshipped.values()]) clearTimeout(timer);
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
      paused: this.#paused,
      pauseReason: this.#pauseReason,
      workersAlive: this.#pool.workersAlive,
      migrations: { ...this.#migrations },
      lastReclaim: this.#lastReclaim && { reason: this.#lastReclaim.reason, clearedMs: this.#lastReclaim.clearedMs },
    };
  }

  /**
   * The person at the machine is back (reclaim-monitor.ts): no slot is offered any more and every
   * task here moves to another host — frozen at its next safe point within FREEZE_GRACE_MS, or at
   * once when `urgent` (the page is going away).
   */
  reclaim(reason: MigrationReason, urgent: boolean): void {
    if (!this.#paused) {
      this.#paused = true;
      this.#pauseReason = reason;
      this.#lastReclaim = { reason, at: performance.now(), clearedMs: null };
      this.#link.send({ type: 'capacity', slots: 0 });
    }
    if (urgent) {
      this.#departing = true;
      for (const tid of [...this.#unshipped.keys()]) this.#shipUnanswered(tid);
    }
    this.#evacuate('all', reason, urgent ? 0 : FREEZE_GRACE_MS);
    this.#pool.dropIdleWorkers();
    if (urgent) {
      this.#pending.sendNow();
      this.#router.departing();
      // Closing the channels tells the other hosts at once: what they sent here unacknowledged goes through the relay.
      this.#network?.stop();
    }
    this.#noteCleared();
    this.#scheduleNotify();
  }

  /** Obtrusiveness as the page sees it: the reclaim's event until its last worker ended (`now`, or at `endedAt`). */
  #noteCleared(endedAt = performance.now()): void {
    const reclaim = this.#lastReclaim;
    if (this.#paused && reclaim && reclaim.clearedMs === null && this.#pool.workersAlive === 0) {
      reclaim.clearedMs = endedAt - reclaim.at;
    }
  }

  /** The machine is left alone again: the slots are offered again. */
  available(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#pauseReason = null;
    this.#link.send({ type: 'capacity', slots: this.#options.slots });
    this.#scheduleNotify();
  }

  /** For React's useSyncExternalStore: the same object until something changed. */
  readonly current = (): HostSnapshot => this.#current;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  #onWelcome(welcome: CoordinatorMessageOf<'welcome'>): void {
    this.#network?.setIdentity(welcome.peerId, welcome.iceServers);
    this.#relayLanes.linkLost();
    this.#outbox.flush();
    void this.#pending.resendAll().catch((error: unknown) => console.warn('webpvm: could not resend results', error));
    const held = this.#pool.held();
    for (const [tid, { ref, checkpoint }] of this.#unsentCheckpoints) {
      this.#unsentCheckpoints.delete(tid);
      if (held.some((h) => h.tid === ref.tid && h.attempt === ref.attempt)) this.#sendCheckpoint(ref, checkpoint);
    }
    this.#scheduleNotify();
  }

  /** MPVM's event: the coordinator holds messages for these tasks from now on, then each leaves (#onLeft). */
  #evacuate(tids: ReadonlySet<string> | 'all', reason: MigrationReason, graceMs: number): void {
    const leaving = this.#pool.held().filter((ref) => tids === 'all' || tids.has(ref.tid));
    for (let i = 0; i < leaving.length; i += LIMITS.itemsPerBatch) {
      this.#outbox.send({ type: 'migrating', tasks: leaving.slice(i, i + LIMITS.itemsPerBatch), reason });
    }
    if (leaving.length) this.#pool.evacuate(tids, graceMs);
  }

  /**
   * Flush and transfer: the task's image — the checkpoint it froze at (or the last one, to be
   * replayed from), what it received since and did not read, and its inbox's seqs — goes to the
   * coordinator in pieces, followed by `migrated`. Messages that reach this page for it later are
   * sent back to their senders or on to the coordinator, which holds them until the task runs again.
   */
  #onLeft({ assignment, started, frozen, obtrusivenessMs }: LeftTask): void {
    // The worker is gone already: cutting and sending the image is no longer the person's CPU time.
    const workerEndedAt = performance.now();
    const { tid, attempt } = assignment;
    if (frozen) this.#acceptCheckpoint(tid, frozen);
    this.#router.taskLeft(tid);
    this.#lanes?.taskGone(tid);
    this.#relayLanes.taskGone(tid);
    const inbox = this.#inboxes.cut(tid);
    const latest = this.#latest.get(tid) ?? null;
    const image = encodeImage({
      tid,
      checkpoint: latest && {
        state: { json: latest.checkpoint.state, buffers: latest.stateBuffers },
        rng: latest.checkpoint.rng,
        sent: latest.checkpoint.sent,
        requests: latest.checkpoint.requests,
      },
      ...inbox,
    });
    const destination = this.#destinations.get(tid);
    this.#forgetLive(tid);
    this.#arriving.delete(tid);
    if (image.byteLength > LIMITS.imageBytes) {
      this.#pending.add({ tid, attempt, ok: false, error: { code: 'E_TOO_LARGE', message: `its image is ${image.byteLength} bytes, over ${LIMITS.imageBytes}` } });
      return;
    }
    const migrated = { type: 'migrated', tid, attempt, imageBytes: image.byteLength, frozen: frozen !== null, obtrusivenessMs } as const;
    const ship = (named: { attempt: number; peerId: string | null } | null): void => {
      // Straight to the next host when a channel to it is open: the coordinator is spared the bytes.
      const channel = !this.#departing && named?.peerId && named.attempt === attempt + 1 ? this.#network?.open(named.peerId) : null;
      if (channel && named) {
        for (const part of imageParts(tid, named.attempt, image)) channel.send(FrameKind.envelope, part);
        this.#keepSentImage(tid, image);
        this.#outbox.send({ ...migrated, via: 'channel' });
        return;
      }
      for (const part of imageParts(tid, attempt, image)) this.#outbox.send(part);
      this.#outbox.send({ ...migrated, via: 'coordinator' });
    };
    // A task frozen within a millisecond may be cut before the coordinator has named its destination.
    if (destination || this.#departing || !this.#network || this.#link.state !== 'connected') ship(destination ?? null);
    else this.#unshipped.set(tid, { ship, timer: setTimeout(() => this.#shipUnanswered(tid), DESTINATION_WAIT_MS) });
    if (started) this.#migrations.out += 1;
    this.#noteCleared(workerEndedAt);
    this.#scheduleNotify();
  }

  #shipUnanswered(tid: string): void {
    const waiting = this.#unshipped.get(tid);
    this.#unshipped.delete(tid);
    waiting?.ship(null);
  }

  #keepSentImage(tid: string, image: Uint8Array): void {
    const earlier = this.#sentImages.get(tid);
    if (earlier) clearTimeout(earlier.timer);
    this.#sentImages.set(tid, { image, timer: setTimeout(() => this.#sentImages.delete(tid), KEEP_SENT_IMAGE_MS) });
  }

  #waitsForImage(tid: string): boolean {
    for (const { task } of this.#awaitingImage.values()) if (task.tid === tid) return true;
    return false;
  }

  /**
   * An image over a data channel may come after its assignment: the task waits for it, then asks
   * for it through the coordinator, then gives up (it restarts from its checkpoint elsewhere).
   */
  #awaitImage(task: TaskAssignment): void {
    const key = `${task.tid}#${task.attempt}`;
    const waiting = this.#awaitingImage.get(key);
    if (waiting && waiting.asked) {
      this.#awaitingImage.delete(key);
      this.#pending.add({ tid: task.tid, attempt: task.attempt, ok: false, error: { code: 'E_BAD_FRAME', message: 'its image did not arrive' } });
      return;
    }
    if (waiting) this.#outbox.send({ type: 'image-missing', tid: task.tid, attempt: task.attempt });
    this.#awaitingImage.set(key, { task, asked: waiting !== undefined, timer: setTimeout(() => this.#awaitImage(task), IMAGE_WAIT_MS) });
  }

  /**
   * Assigned tasks; one resuming from a migration starts with its image — state, mailbox, its
   * inbox's seqs — once the image is whole (its parts come first through the coordinator, or on
   * their own over a data channel).
   */
  #onAssign(tasks: TaskAssignment[]): void {
    const extras = new Map<string, StartExtras>();
    const restores: (() => void)[] = [];
    const runnable: TaskAssignment[] = [];
    for (const task of tasks) {
      if (task.imageBytes === undefined) {
        if (task.resume) this.#latest.set(task.tid, { checkpoint: withCounters(task.resume), stateBuffers: [] });
        runnable.push(task);
        continue;
      }
      const key = `${task.tid}#${task.attempt}`;
      const bytes = this.#images.take(task.tid, task.attempt);
      if (!bytes) {
        if (!this.#awaitingImage.has(key)) this.#awaitImage(task);
        continue;
      }
      const waited = this.#awaitingImage.get(key);
      if (waited) clearTimeout(waited.timer);
      this.#awaitingImage.delete(key);
      const decoded = bytes.byteLength === task.imageBytes ? decodeImage(bytes) : null;
      if (!decoded?.ok) {
        const message = decoded ? decoded.error.message : `its image is ${bytes.byteLength} bytes, not ${task.imageBytes}`;
        this.#pending.add({ tid: task.tid, attempt: task.attempt, ok: false, error: { code: 'E_BAD_FRAME', message } });
        continue;
      }
      const image = decoded.value;
      const checkpoint = image.checkpoint;
      const resume = checkpoint && { state: checkpoint.state.json, rng: checkpoint.rng, sent: checkpoint.sent, requests: checkpoint.requests };
      if (resume) this.#latest.set(task.tid, { checkpoint: resume, stateBuffers: checkpoint.state.buffers });
      else this.#latest.delete(task.tid);
      runnable.push({ ...task, resume });
      extras.set(task.tid, { stateBuffers: checkpoint?.state.buffers ?? [], mailbox: image.mailbox.map((m) => m.envelope), delivered: [...image.delivered] });
      this.#arriving.add(task.tid);
      this.#migrations.in += 1;
      restores.push(() => {
        this.#inboxes.restore(task.tid, image);
        this.#router.taskArrived(task.tid, checkpoint?.sent ?? []);
      });
    }
    this.#pool.assign(runnable, extras);
    for (const restore of restores) restore();
    // Assigned while the person is back (the coordinator had not heard yet): straight on elsewhere.
    if (this.#paused && runnable.length) this.#evacuate(new Set(runnable.map((t) => t.tid)), this.#pauseReason ?? 'input', 0);
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

  /** The task's log now starts from this checkpoint: a restart from it replays what follows. */
  #acceptCheckpoint(tid: string, taken: WorkerCheckpoint): void {
    this.#latest.set(tid, { checkpoint: taken.checkpoint, stateBuffers: taken.stateBuffers });
    this.#inboxes.checkpointed(tid, taken.received, taken.unread);
  }

  /**
   * A periodic checkpoint: kept here for a migration, stored in IndexedDB, and sent to the
   * coordinator for a restart after the loss of this host — unless its state holds bytes or is
   * too large for a frame, when it stays with this host and moves only within an image.
   */
  #onCheckpoint(ref: TaskRef, taken: WorkerCheckpoint): void {
    this.#acceptCheckpoint(ref.tid, taken);
    const { checkpoint, stateBuffers } = taken;
    saveCheckpoint(this.#store, ref, checkpoint, stateBuffers)
      .catch((error: unknown) => console.warn('webpvm: could not store a checkpoint', error))
      .then(() => {
        if (stateBuffers.length > 0 || wireValueProblem(checkpoint, 'checkpoint')) return;
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
      const waiting = this.#awaitingImage.get(`${ref.tid}#${ref.attempt}`);
      if (waiting) clearTimeout(waiting.timer);
      this.#awaitingImage.delete(`${ref.tid}#${ref.attempt}`);
    }
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
    this.#lanes?.taskGone(tid);
    this.#relayLanes.taskGone(tid);
    this.#inboxes.close(tid);
    this.#outbox.dropRequestsOf(tid);
    this.#progress.forget(tid);
    this.#logs.forget(tid);
    this.#unsentCheckpoints.delete(tid);
    this.#latest.delete(tid);
    this.#images.forget(tid);
    this.#destinations.delete(tid);
  }

  #scheduleNotify(): void {
    this.#notifyTimer ??= setTimeout(() => {
      this.#notifyTimer = null;
      this.#current = this.snapshot();
      for (const listener of this.#listeners) listener();
    }, NOTIFY_MS);
  }
}

function withCounters(checkpoint: Checkpoint): Required<Checkpoint> {
  return { ...checkpoint, sent: checkpoint.sent ?? [], requests: checkpoint.requests ?? 0 };
}

/**
 * The worker's own copy of a message's envelope, to transfer: this page keeps the message for its
 * replay log, and structured clone would copy the whole buffer a view lies in (a data channel's
 * frame, for one). An image's envelopes are copied out of it as it is decoded: a task's start
 * clones them as they are.
 */
function workerCopy(message: SealedMessage): Uint8Array<ArrayBuffer> {
  return message.envelope.slice();
}
