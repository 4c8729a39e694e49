import {
  LIMITS,
  encodeImage,
  isSealed,
  parseTid,
  type CoordinatorMessageOf,
  type HostMessage,
  type ImagePartHeader,
  type MigrationReason,
  type TaskAssignment,
  type TaskImage,
  type TaskOutcome,
  type TaskRef,
} from '@webpvm/vm-protocol';
import { CheckpointKeeper } from './checkpoint-keeper.ts';
import { type Clock, systemClock } from './clock.ts';
import { CoordinatorLink, type LinkOptions, type SocketLike } from './coordinator-link.ts';
import { CoordinatorOutbox } from './coordinator-outbox.ts';
import { EndedLogs } from './ended-logs.ts';
import type { HostOptions } from './host-options.ts';
import { HostStatus, type HostSnapshot } from './host-status.ts';
import { ImageRefills } from './image-refills.ts';
import { IncomingImages } from './incoming-images.ts';
import { KeptImages } from './kept-images.ts';
import type { KeyValueStore } from './kv-store.ts';
import { LogLimiter } from './log-limiter.ts';
import { PageMessaging } from './messaging/page-messaging.ts';
import type { CreatePeer } from './messaging/peer-network.ts';
import type { LinkFrames } from './messaging/lane-links.ts';
import { OutgoingImages } from './outgoing-images.ts';
import { PacedRelay } from './paced-relay.ts';
import { PendingRequests } from './pending-requests.ts';
import { PendingResults } from './pending-results.ts';
import { ProgressBatcher } from './progress-batcher.ts';
import { SlotPool, type LeftTask, type StartExtras } from './slot-pool.ts';
import type { SpawnTaskWorker } from './task-worker-handle.ts';
import { wireOutcome } from './wire-value.ts';

export type { HostSnapshot } from './host-status.ts';

/** How long a task gets to reach a safe point before its worker is terminated (docs/architecture.md, "Migration"). */
export const FREEZE_GRACE_MS = 20;

export interface HostRuntimeOptions {
  options: HostOptions;
  store: KeyValueStore;
  spawn: SpawnTaskWorker;
  /** The job frames that make the links lanes ride on (sandbox-frames.ts). */
  links: LinkFrames;
  url: string;
  userAgent: string;
  /** The browser profile's volunteer key (volunteer-key.ts). */
  volunteerKey: string;
  createSocket?: (url: string) => SocketLike;
  /** Data channels between hosts; without it (or with `?p2p=off`) messages between hosts go through the relay. */
  createPeer?: CreatePeer;
  /** The page's is a worker's (clock.ts): a hidden page's own timers are throttled. */
  clock?: Clock;
  /** Where the page goes when its coordinator is gone for good (coordinator-failover.ts). */
  failover?: LinkOptions['failover'];
}

/**
 * One volunteer host: the coordinator link, the slot pool and the durable outbox wired together
 * with the page's messaging, its checkpoints, the images of tasks that migrate, and its status.
 * Every step that must survive an outage writes to IndexedDB before it sends.
 */
export class HostRuntime {
  #options: HostOptions;
  #link: CoordinatorLink;
  #pool: SlotPool;
  #pending: PendingResults;
  #progress: ProgressBatcher;
  #outbox: CoordinatorOutbox;
  #resends: PacedRelay;
  /** What the sender logs of tasks that ended here still held (ended-logs.ts). */
  #ended = new EndedLogs();
  #requests = new PendingRequests();
  /** The coordinator process of the last welcome (`boot`); null before the first. */
  #boot: string | null = null;
  #messaging: PageMessaging;
  #checkpoints: CheckpointKeeper;
  #outgoing: OutgoingImages;
  #incoming: IncomingImages;
  /** Migrated tasks waiting for the messages their images name (image-refills.ts). */
  #refills: ImageRefills;
  /** Other volunteers' checkpoint images this host keeps (kept-images.ts). */
  #kept: KeptImages;
  #status: HostStatus;
  #logs = new LogLimiter();

  constructor(runtime: HostRuntimeOptions) {
    this.#options = runtime.options;
    const send = (message: HostMessage) => this.#link.send(message);
    const fail = (outcome: TaskOutcome) => this.#pending.add(outcome);
    const clock = runtime.clock ?? systemClock;
    this.#pending = new PendingResults(runtime.store, send, clock);
    this.#progress = new ProgressBatcher(send, clock);
    this.#outbox = new CoordinatorOutbox((frame) => (frame instanceof Uint8Array ? this.#link.sendBinary(frame) : send(frame)));
    // Sender logs sent again (after a reconnect, for a task restarted after a crash): the relay finds receivers wherever they run now.
    this.#resends = new PacedRelay((bytes) => this.#outbox.send(bytes), clock);
    this.#pool = new SlotPool({
      slots: runtime.options.slots,
      spawn: runtime.spawn,
      checkpointIntervalMs: () => this.#link.checkpointIntervalMs,
      senderLog: runtime.options.senderLog,
      clock,
      events: {
        outcome: (outcome) => this.#onOutcome(outcome),
        checkpoint: (ref, checkpoint) => this.#checkpoints.periodic(ref, checkpoint),
        left: (task) => this.#onLeft(task),
        givenBack: (refs) => {
          for (const ref of refs) this.#forgetLive(ref.tid);
          this.#outbox.send({ type: 'withdrawn', tasks: refs });
        },
        progress: (ref, fraction) => this.#progress.record(ref, fraction),
        log: (ref, line) => {
          if (this.#logs.allow(ref.tid, performance.now())) send({ type: 'log', tid: ref.tid, attempt: ref.attempt, line });
        },
        started: (ref) => {
          this.#messaging.inboxes.started(ref.tid);
          this.#incoming.started(ref);
        },
        send: (ref, message) => {
          this.#progress.countOut(ref);
          this.#messaging.router.send(message);
          this.#status.changed();
        },
        laneWrote: (ref, to, seq, count) => {
          this.#progress.countOut(ref, count);
          this.#messaging.laneWrote({ from: ref.tid, to }, seq, count);
          this.#status.changed();
        },
        laneSent: (_ref, message, bytes) => this.#messaging.laneSent(message, bytes),
        delivered: (ref, entries) => {
          const fromLanes = this.#messaging.delivered(ref.tid, entries);
          if (fromLanes) this.#progress.countIn(ref, fromLanes);
        },
        laneClosed: (ref, to) => this.#messaging.laneClosed({ from: ref.tid, to }),
        resent: (_ref, messages) => this.#resends.send(messages),
        endedLog: (ref, messages) => this.#ended.keep(ref.tid, messages),
        logFull: (ref, to, dropped) => send({ type: 'log-full', tid: ref.tid, attempt: ref.attempt, to, dropped }),
        request: (ref, requestId, op) => {
          const request = { type: 'request', tid: ref.tid, attempt: ref.attempt, requestId, op } as const;
          this.#requests.sent(request);
          this.#outbox.send(request);
        },
        change: () => this.#status.changed(),
      },
    });
    this.#messaging = new PageMessaging({
      createPeer: runtime.options.p2p ? (runtime.createPeer ?? null) : null,
      links: runtime.links,
      keepLog: runtime.options.replayLog,
      socketUrl: runtime.url,
      workers: this.#pool,
      waitsForImage: (tid) => this.#incoming.waitsFor(tid) || this.#refills.waitsFor(tid),
      filled: (tid) => {
        const mailbox = this.#messaging.inboxes.mailbox(tid);
        if (mailbox) this.#refills.filled(tid, mailbox);
      },
      send,
      relay: (bytes) => this.#outbox.send(bytes),
      part: (header, bytes, fromPeer) => this.#onPart(header, bytes, fromPeer),
      countIn: (ref, count) => this.#progress.countIn(ref, count),
      ackedElsewhere: (of, by, seq) => this.#ended.acked(of, by, seq),
      changed: () => this.#status.changed(),
      clock,
    });
    this.#checkpoints = new CheckpointKeeper({
      store: runtime.store,
      inboxes: this.#messaging.inboxes,
      send,
      sendBinary: (bytes) => this.#link.sendBinary(bytes),
      held: () => this.#pool.held(),
    });
    this.#kept = new KeptImages({ store: runtime.store, send: (frame) => this.#outbox.send(frame) });
    this.#incoming = new IncomingImages({ send: (frame) => this.#outbox.send(frame), ready: (task) => this.#onAssign([task]), fail, clock });
    this.#refills = new ImageRefills({
      send: (message) => this.#outbox.send(message),
      ready: (task, image) => this.#onAssign([task], image),
      fail: (outcome) => {
        this.#messaging.inboxes.close(outcome.tid);
        fail(outcome);
      },
      clock,
    });
    this.#outgoing = new OutgoingImages({
      send: (frame) => this.#outbox.send(frame),
      channel: (peerId) => this.#messaging.channel(peerId),
      mayWait: () => this.#messaging.hasChannels && this.#link.state === 'connected',
      fail,
      clock,
    });
    this.#link = new CoordinatorLink({
      url: runtime.url,
      slots: () => (this.#status.paused ? 0 : runtime.options.slots),
      userAgent: runtime.userAgent,
      volunteerKey: runtime.volunteerKey,
      store: runtime.store,
      heldTasks: () => this.#pool.held(),
      createSocket: runtime.createSocket,
      clock,
      ...(runtime.failover ? { failover: runtime.failover } : {}),
      events: {
        welcome: (m) => this.#onWelcome(m),
        assign: (m) => this.#onAssign(m.tasks),
        cancel: (m) => this.#onCancel(m.tasks),
        withdraw: (m) => this.#pool.giveBack(m.tasks, (tid) => this.#messaging.inboxes.hasMail(tid)),
        ack: (m) => this.#onAck(m.tasks),
        reply: (m) => {
          this.#requests.answered(m.tid, m.requestId);
          this.#pool.post(m.tid, m);
        },
        routes: (m) => this.#messaging.router.onRoutes(m.routes),
        migrate: (m) => this.#evacuate(new Set(m.tasks.map((t) => t.tid)), 'order', FREEZE_GRACE_MS),
        peerGone: (m) => this.#messaging.peerGone(m.peerId),
        destination: (m) => this.#outgoing.destination(m),
        imageComing: (m) => this.#incoming.expect(m),
        sendImage: (m) => this.#outgoing.sendAgain(m),
        relay: (bytes) => {
          this.#messaging.router.receive(bytes, null);
          this.#status.changed();
        },
        lane: (m) => this.#messaging.laneGranted(m),
        laneRefused: (m) => this.#messaging.laneRefused(m),
        covered: (m) => {
          for (const { tid, to, seq } of m.items) {
            this.#pool.post(tid, { type: 'covered', tid, to, seq });
            this.#ended.covered(tid, to, seq);
          }
        },
        restarted: (m) => this.#sendAgain(new Set(m.tids), 'all'),
        reconnected: (m) => this.#sendAgain(new Set(m.tids), 'unacknowledged'),
        sendAgain: (m) => this.#refill(m.to, new Map(m.from.map((f) => [f.tid, f.after]))),
        checkpointDue: (m) => {
          for (const { tid } of m.tasks) {
            this.#checkpoints.due(tid);
            this.#pool.checkpointNow(tid);
          }
        },
        keepImage: (m) => void this.#kept.keep(m),
        returnImage: (m) => void this.#kept.give(m),
        forgetImages: (m) => void this.#kept.forget(m.tids),
        forgetLogs: (m) => this.#ended.forget(new Set(m.jobs)),
        stateChange: () => this.#status.changed(true),
      },
    });
    this.#status = new HostStatus(() => ({
      connection: this.#link.state,
      hostId: this.#link.hostId,
      peerId: this.#messaging.peerId,
      slots: this.#options.slots,
      policy: this.#options.policy,
      running: this.#pool.running(),
      queued: this.#pool.queued,
      pendingResults: this.#pending.count,
      workersStarted: this.#pool.workersStarted,
      messages: this.#messaging.counters,
      workersAlive: this.#pool.workersAlive,
    }));
  }

  async start(): Promise<void> {
    await this.#pending.load();
    await this.#checkpoints.prune(this.#pending.tids());
    await this.#link.start();
  }

  stop(): void {
    this.#outgoing.stop();
    this.#incoming.stop();
    this.#refills.stop();
    this.#link.stop();
    this.#messaging.stop();
    this.#pool.terminateAll();
    this.#progress.stop();
    this.#resends.stop();
    this.#pending.stop();
    this.#status.stop();
  }

  snapshot(): HostSnapshot {
    return this.#status.snapshot();
  }

  /**
   * The person at the machine is back (reclaim-monitor.ts): no slot is offered any more and every
   * task here moves to another host — frozen at its next safe point within FREEZE_GRACE_MS, or at
   * once when `urgent` (the page is going away).
   */
  reclaim(reason: MigrationReason, urgent: boolean): void {
    if (this.#status.pause(reason)) this.#link.send({ type: 'capacity', slots: 0 });
    if (urgent) this.#outgoing.departing();
    this.#evacuate('all', reason, urgent ? 0 : FREEZE_GRACE_MS);
    this.#pool.dropIdleWorkers();
    if (urgent) {
      this.#pending.sendNow();
      this.#messaging.departing();
    }
    this.#status.noteCleared(this.#pool.workersAlive);
    this.#status.changed(true);
  }

  /** The machine is left alone again: the slots are offered again. */
  available(): void {
    if (!this.#status.resume()) return;
    this.#link.send({ type: 'capacity', slots: this.#options.slots });
    this.#status.changed(true);
  }

  /** For React's useSyncExternalStore: the same object until something changed. */
  readonly current = (): HostSnapshot => this.#status.current();

  readonly subscribe = (listener: () => void): (() => void) => this.#status.subscribe(listener);

  /** A piece of an image: one the coordinator numbered is to keep (kept-images.ts), a migration's is numbered 0. */
  #onPart(header: ImagePartHeader, bytes: Uint8Array, fromPeer: string | null): boolean {
    if (fromPeer !== null || !header.image) return this.#incoming.part(header, bytes, fromPeer);
    this.#kept.part(header, bytes);
    return true;
  }

  #onWelcome(welcome: CoordinatorMessageOf<'welcome'>): void {
    this.#messaging.welcome(welcome);
    // Requests the socket took before it broke may never have been read: every one unanswered goes again, answered once.
    this.#outbox.dropRequests();
    this.#outbox.flush();
    for (const request of this.#requests.all()) this.#outbox.send(request);
    // Relayed messages the broken socket took may never have reached the coordinator: what their
    // receivers' hosts did not acknowledge goes again. A restarted coordinator lost more: the
    // messages it held, and images in flight — tasks it starts again from older restart points.
    if (this.#boot !== null) this.#sendAgain(null, this.#boot === welcome.boot ? 'unacknowledged' : 'all');
    this.#boot = welcome.boot;
    this.#pending.resendAll();
    this.#checkpoints.welcome();
    void this.#kept.welcome();
    // The coordinator learns where ended tasks' logs are (after its restart), and says which jobs ended since.
    const ended = this.#ended.tids();
    for (let i = 0; i < ended.length; i += LIMITS.itemsPerBatch) this.#outbox.send({ type: 'logs-kept', tids: ended.slice(i, i + LIMITS.itemsPerBatch) });
    this.#status.changed();
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
   * replayed from), what it received since and did not read, and its inbox's seqs — goes to its
   * next host (outgoing-images.ts), followed by `migrated`. Messages that reach this page for it
   * later are sent back to their senders or on to the coordinator, which holds them until the
   * task runs again.
   */
  #onLeft({ assignment, started, frozen, obtrusivenessMs }: LeftTask): void {
    // The worker is gone already: cutting and sending the image is no longer the person's CPU time.
    const workerEndedAt = performance.now();
    const { tid, attempt } = assignment;
    if (frozen) this.#checkpoints.accept(tid, frozen);
    this.#messaging.router.taskLeft(tid);
    this.#messaging.lanesGone(tid);
    const inbox = this.#messaging.inboxes.cut(tid);
    const image = encodeImage({ tid, checkpoint: this.#checkpoints.forImage(tid), ...inbox, log: this.#checkpoints.logForImage(tid) });
    const destination = this.#outgoing.takeDestination(tid);
    this.#forgetLive(tid);
    if (!this.#outgoing.ship({ tid, attempt, image, frozen: frozen !== null, obtrusivenessMs }, destination)) return;
    if (started) this.#status.migratedOut();
    this.#status.noteCleared(this.#pool.workersAlive, workerEndedAt);
    this.#status.changed();
  }

  /**
   * Assigned tasks; one resuming from a migration starts with its image — state, mailbox, its
   * inbox's seqs — once the image is whole (incoming-images.ts), and once every message it names
   * came again from its senders (image-refills.ts): `refilled` is such a task's image, its inbox
   * restored from it already.
   */
  #onAssign(tasks: TaskAssignment[], refilled: TaskImage | null = null): void {
    const extras = new Map<string, StartExtras>();
    const restores: (() => void)[] = [];
    const runnable: TaskAssignment[] = [];
    for (const task of tasks) {
      if (task.imageBytes === undefined) {
        if (task.resume) this.#checkpoints.resumeFrom(task.tid, task.resume);
        runnable.push(task);
        continue;
      }
      const image = refilled ?? this.#incoming.take(task);
      if (!image) continue;
      if (!refilled && ImageRefills.needed(image)) {
        this.#refills.wait(task, image);
        this.#messaging.inboxes.restore(task.tid, image);
        continue;
      }
      const checkpoint = image.checkpoint;
      runnable.push({ ...task, resume: this.#checkpoints.fromImage(task.tid, checkpoint, image.log) });
      extras.set(task.tid, {
        stateBuffers: checkpoint?.state.buffers ?? [],
        mailbox: image.mailbox.filter(isSealed).map((m) => m.envelope),
        delivered: [...image.delivered],
        log: image.log,
      });
      this.#status.migratedIn(refilled !== null);
      restores.push(() => {
        if (!refilled) this.#messaging.inboxes.restore(task.tid, image);
        this.#messaging.router.taskArrived(task.tid, checkpoint?.sent ?? []);
      });
    }
    this.#pool.assign(runnable, extras);
    for (const restore of restores) restore();
    // Assigned while the person is back (the coordinator had not heard yet): straight on elsewhere.
    if (this.#status.paused && runnable.length) this.#evacuate(new Set(runnable.map((t) => t.tid)), this.#status.pauseReason ?? 'input', 0);
  }

  /**
   * `to` resumes elsewhere from an image that names messages it read: the tasks here, and the
   * logs of those that ended here, send it again what they sent it after the seqs of `after`.
   */
  #refill(to: string, after: ReadonlyMap<string, number>): void {
    this.#resends.send(this.#ended.sentTo(to, after));
    for (const [tid, seq] of after) if (this.#pool.holds(tid)) this.#pool.post(tid, { type: 'resend', tid, to, acked: [{ to, seq }] });
  }

  /**
   * The tasks here, and the logs of those that ended here, send again what they sent `receivers`
   * (null: every receiver) — `all` their logs hold for receivers restarted from their checkpoints
   * (after a crash, or by a restarted coordinator), or what the receivers' hosts did not
   * acknowledge when a connection broke.
   * Receivers drop by seq what they have.
   */
  #sendAgain(receivers: ReadonlySet<string> | null, what: 'all' | 'unacknowledged'): void {
    const unacknowledged = what === 'unacknowledged';
    this.#resends.send(this.#ended.messages({ ...(receivers ? { to: receivers } : {}), unacknowledged }));
    for (const { tid } of this.#pool.held()) {
      if (receivers?.has(tid)) continue;
      const acked = unacknowledged ? this.#messaging.router.acknowledged(tid) : [];
      if (!receivers) this.#pool.post(tid, { type: 'resend', tid, acked });
      for (const to of receivers ?? []) if (parseTid(to).jobId === parseTid(tid).jobId) this.#pool.post(tid, { type: 'resend', tid, to, acked });
    }
  }

  #onOutcome(raw: TaskOutcome): void {
    const sent = this.#messaging.router.sentBy(raw.tid);
    const outcome = wireOutcome(raw, sent.length ? { sent } : {});
    this.#status.outcome(outcome.ok);
    // Its ended log (which came just before) goes on from what receivers' hosts acknowledged so far.
    for (const { to, seq } of this.#messaging.router.acknowledged(outcome.tid)) this.#ended.acked(outcome.tid, to, seq);
    this.#messaging.router.taskEnded(outcome.tid, outcome.ok);
    this.#forgetLive(outcome.tid);
    this.#pending.add(outcome);
    this.#status.changed();
  }

  #onCancel(refs: TaskRef[]): void {
    this.#pool.cancel(refs);
    this.#incoming.cancel(refs);
    this.#refills.cancel(refs);
    for (const ref of refs) {
      // A cancel of an older attempt leaves the one running now alone.
      if (!this.#pool.holds(ref.tid)) {
        this.#messaging.router.taskEnded(ref.tid, false);
        this.#forgetLive(ref.tid);
      }
      void this.#checkpoints.forgetStored(ref).catch(() => undefined);
    }
  }

  async #onAck(refs: TaskRef[]): Promise<void> {
    this.#pending.ack(refs);
    this.#status.changed();
    try {
      await Promise.all(refs.map((ref) => this.#checkpoints.forgetStored(ref)));
    } catch (error) {
      console.warn('webpvm: could not forget acknowledged checkpoints', error);
    }
  }

  #forgetLive(tid: string): void {
    this.#messaging.lanesGone(tid);
    this.#messaging.inboxes.close(tid);
    this.#outbox.dropRequestsOf(tid);
    this.#requests.forget(tid);
    this.#progress.forget(tid);
    this.#logs.forget(tid);
    this.#checkpoints.forget(tid);
    this.#incoming.forget(tid);
    this.#refills.forget(tid);
    this.#outgoing.forget(tid);
  }
}
