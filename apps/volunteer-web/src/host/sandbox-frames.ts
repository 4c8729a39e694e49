import { type FlagChange, FromSandbox, MAX_FLAG_CHANGES, SANDBOX_PATH, type ErrorCode, type ToSandbox } from '@webpvm/vm-protocol';
import type { Clock, Timer } from './clock.ts';
import type { LinkEvents, LinkFrames } from './messaging/lane-links.ts';
import type { SpawnTaskWorker, TaskWorkerHandle, TaskWorkerListener, WorkerJob } from './task-worker-handle.ts';

/** A frame with no worker left stays this long, for the job's next tasks, before it goes. */
const FRAME_LINGER_MS = 30_000;
/** A frame not running by then will not: its workers fail rather than wait for ever. */
const FRAME_START_MS = 20_000;
/**
 * A job's frame runs in a process of its own, which dies alone when its tasks exhaust memory
 * (docs/sandbox.md), and says nothing as it does: the page asks every FRAME_PING_MS, and counts
 * a frame silent for FRAME_SILENT_MS as gone — its tasks failed, by their own doing.
 */
const FRAME_PING_MS = 1_000;
const FRAME_SILENT_MS = 10_000;
/** A lane asked of a frame and not made yet, by its link and stream. */
const laneKey = (link: number, stream: number) => `${link}:${stream}`;

interface Frame {
  job: WorkerJob;
  iframe: HTMLIFrameElement;
  ready: boolean;
  /** Whether its workers share safe-point cells, as the frame says once it runs (null until then). */
  isolated: boolean | null;
  /** The program's text once fetched, or why it could not be. */
  program: { source: string } | { code: ErrorCode; error: string } | null;
  /** Messages for the frame until it runs and has the program. */
  outbox: [ToSandbox, Transferable[]][] | null;
  listeners: Map<number, TaskWorkerListener>;
  timer: Timer | null;
  /** When it last answered. */
  heardAt: number;
  /** Flag changes of this turn, sent together at its end. */
  flags: FlagChange[];
  /** Its links (lane-links.ts), and the lanes asked of it not yet made, by `link:stream`. */
  links: Set<number>;
  lanes: Map<string, (made: boolean) => void>;
}

export interface SandboxFramesOptions {
  clock: Clock;
  /** The program's text; by default fetched from the coordinator (a content-addressed, immutable URL). */
  fetchProgram?: (url: string) => Promise<string>;
}

/**
 * Task code runs in a sandboxed frame of its job (docs/sandbox.md): an opaque origin with none of
 * this page's storage — the host's identity, other jobs' checkpoints and results — and a policy
 * that closes the network but for relay lanes. The page speaks to each task worker through a
 * MessagePort of its own, and to the frame to start, flag and stop workers and to make the job's
 * links and lanes, which the frame owns (`links`).
 */
export class SandboxFrames {
  #options: SandboxFramesOptions;
  #frames = new Map<string, Frame>();
  #nextWorker = 0;
  #nextLink = 0;
  #links = new Map<number, { frame: Frame; events: LinkEvents }>();
  #watchdog: Timer | null = null;

  constructor(options: SandboxFramesOptions) {
    this.#options = options;
    window.addEventListener('message', (event) => this.#fromFrame(event));
  }

  spawn: SpawnTaskWorker = (job, listener) => {
    const frame = this.#frameOf(job);
    if (frame.ready) this.#setTimer(frame, null);
    const id = this.#nextWorker++;
    frame.listeners.set(id, listener);
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = ({ data }) => listener.message(data);
    port1.onmessageerror = () => listener.error('E_BAD_FRAME', 'a message from the task worker could not be deserialized');
    this.#post(frame, { type: 'spawn', id, port: port2 }, [port2]);
    const cells = {
      store: (cell: number, bits: number) => this.#flag(frame, { id, op: 'store', cell, bits }),
      or: (cell: number, bits: number) => this.#flag(frame, { id, op: 'or', cell, bits }),
    };
    const handle: TaskWorkerHandle = {
      post: (message, transfer = []) => port1.postMessage(message, transfer),
      lane: (link, stream, gift, made) => {
        if (!frame.listeners.has(id) || this.#links.get(link)?.frame !== frame) return made(false);
        const key = laneKey(link, stream);
        frame.lanes.get(key)?.(false);
        frame.lanes.set(key, made);
        this.#post(frame, { type: 'lane', link, stream, id, gift }, []);
      },
      terminate: () => {
        if (!frame.listeners.delete(id)) return;
        port1.close();
        this.#post(frame, { type: 'terminate', id }, []);
        if (!frame.listeners.size && frame.ready) this.#setTimer(frame, FRAME_LINGER_MS);
      },
      // Chromium makes the frame cross-origin isolated when the page is. A browser that does not
      // has its workers freeze by message and keep checkpoints by the clock, once the frame says so.
      get cells() {
        return globalThis.crossOriginIsolated && frame.isolated !== false ? cells : null;
      },
    };
    return handle;
  };

  /** Links live in the frame of their job, which must be there already: a page makes links only for jobs it runs. */
  readonly links: LinkFrames = {
    open: (jobId, offer, ice, events) => {
      const frame = this.#frames.get(jobId);
      if (!frame) return null;
      const link = this.#nextLink++;
      this.#links.set(link, { frame, events });
      frame.links.add(link);
      this.#post(frame, { type: 'link', link, offer, ice }, []);
      return link;
    },
    signal: (link, signal) => {
      const known = this.#links.get(link);
      if (known) this.#post(known.frame, { type: 'signal', link, signal }, []);
    },
    close: (link) => {
      const known = this.#links.get(link);
      if (!known) return;
      this.#links.delete(link);
      known.frame.links.delete(link);
      this.#post(known.frame, { type: 'unlink', link }, []);
    },
  };

  #frameOf(job: WorkerJob): Frame {
    const known = this.#frames.get(job.jobId);
    if (known) return known;
    const iframe = document.createElement('iframe');
    iframe.sandbox.value = 'allow-scripts';
    iframe.allow = 'cross-origin-isolated';
    // Not `hidden`: Chromium lowers the priority of a renderer process whose frames are all hidden,
    // and a job's frame has a process of its own. One transparent pixel keeps it a visible frame.
    iframe.className = 'task-sandbox';
    iframe.title = `webpvm sandbox of job ${job.jobId}`;
    iframe.src = SANDBOX_PATH;
    const frame: Frame = {
      job,
      iframe,
      ready: false,
      isolated: null,
      program: null,
      outbox: [],
      listeners: new Map(),
      timer: null,
      heardAt: 0,
      flags: [],
      links: new Set(),
      lanes: new Map(),
    };
    this.#frames.set(job.jobId, frame);
    this.#watch();
    this.#setTimer(frame, FRAME_START_MS);
    document.body.append(iframe);
    (this.#options.fetchProgram ?? fetchText)(job.programUrl).then(
      (source) => {
        frame.program = { source };
        this.#flush(frame);
      },
      (error: unknown) => {
        frame.program = { code: 'E_HOST_FAULT', error: `the program cannot be fetched: ${String(error)}` };
        this.#flush(frame);
      },
    );
    return frame;
  }

  /**
   * Each message to a frame crosses processes, and a batch of starts sets a cell per task: the
   * changes of one turn go together, in order, at its end.
   */
  #flag(frame: Frame, change: FlagChange): void {
    if (!frame.flags.length) {
      queueMicrotask(() => {
        for (let i = 0; i < frame.flags.length; i += MAX_FLAG_CHANGES) this.#post(frame, { type: 'flags', items: frame.flags.slice(i, i + MAX_FLAG_CHANGES) }, []);
        frame.flags = [];
      });
    }
    frame.flags.push(change);
  }

  #post(frame: Frame, message: ToSandbox, transfer: Transferable[]): void {
    if (frame.outbox) frame.outbox.push([message, transfer]);
    else frame.iframe.contentWindow?.postMessage(message, '*', transfer);
  }

  /** Sends the program, then what waited, once the frame runs. */
  #flush(frame: Frame): void {
    if (!frame.ready || !frame.program || !frame.outbox) return;
    if ('error' in frame.program) return this.#fail(frame, frame.program.code, frame.program.error);
    const target = frame.iframe.contentWindow;
    if (!target) return this.#fail(frame, 'E_HOST_FAULT', 'the task sandbox is gone');
    target.postMessage({ type: 'program', url: frame.job.programUrl, source: frame.program.source } satisfies ToSandbox, '*');
    for (const [message, transfer] of frame.outbox) target.postMessage(message, '*', transfer);
    frame.outbox = null;
    if (!frame.listeners.size) this.#setTimer(frame, FRAME_LINGER_MS);
  }

  #fromFrame(event: MessageEvent): void {
    const frame = [...this.#frames.values()].find((f) => f.iframe.contentWindow === event.source);
    if (!frame) return;
    const parsed = FromSandbox.safeParse(event.data);
    if (!parsed.success) return;
    const message = parsed.data;
    frame.heardAt = performance.now();
    switch (message.type) {
      case 'pong':
        return;
      case 'worker-error':
        frame.listeners.get(message.id)?.error('E_TASK_FAILED', message.message);
        return;
      case 'worker-stopped':
        // The frame's clock and this page's count from different origins of one time line.
        frame.listeners.get(message.id)?.stopped(Math.min(performance.now(), message.at - performance.timeOrigin));
        return;
      case 'signal':
        if (frame.links.has(message.link)) this.#links.get(message.link)?.events.signal(message.signal);
        return;
      case 'unlinked':
        if (frame.links.has(message.link)) this.#unlinked(frame, message.link);
        return;
      case 'lane-made': {
        const key = laneKey(message.link, message.stream);
        const made = frame.lanes.get(key);
        frame.lanes.delete(key);
        made?.(message.made);
        return;
      }
    }
    if (frame.ready) return;
    frame.ready = true;
    frame.isolated = message.isolated;
    this.#setTimer(frame, null);
    this.#flush(frame);
  }

  /** Pings the frames that run, and fails those silent too long; it stops when no frame is left. */
  #watch(): void {
    if (this.#watchdog !== null) return;
    this.#watchdog = this.#options.clock.setInterval(() => {
      const now = performance.now();
      for (const frame of [...this.#frames.values()]) {
        if (!frame.ready) continue;
        if (now - frame.heardAt <= FRAME_SILENT_MS) this.#post(frame, { type: 'ping' }, []);
        else this.#fail(frame, 'E_TASK_FAILED', `the job's task sandbox stopped answering for ${FRAME_SILENT_MS / 1000} s: its process crashed (out of memory?)`);
      }
      if (this.#frames.size) return;
      this.#options.clock.clear(this.#watchdog);
      this.#watchdog = null;
    }, FRAME_PING_MS);
  }

  /** The frame goes, and every worker it was to hold fails with `message`. */
  #fail(frame: Frame, code: ErrorCode, message: string): void {
    this.#remove(frame);
    for (const listener of [...frame.listeners.values()]) listener.error(code, message);
  }

  #remove(frame: Frame): void {
    this.#setTimer(frame, null);
    if (this.#frames.get(frame.job.jobId) === frame) this.#frames.delete(frame.job.jobId);
    frame.outbox = [];
    frame.iframe.remove();
    for (const link of [...frame.links]) this.#unlinked(frame, link);
    for (const made of [...frame.lanes.values()]) made(false);
    frame.lanes.clear();
  }

  #unlinked(frame: Frame, link: number): void {
    frame.links.delete(link);
    const known = this.#links.get(link);
    this.#links.delete(link);
    known?.events.unlinked();
  }

  /** Null clears the frame's timer; a number sets it: the start deadline before the frame runs, the linger after. */
  #setTimer(frame: Frame, ms: number | null): void {
    this.#options.clock.clear(frame.timer);
    frame.timer = null;
    if (ms === null) return;
    frame.timer = this.#options.clock.setTimeout(() => {
      frame.timer = null;
      if (frame.ready) this.#remove(frame);
      else this.#fail(frame, 'E_HOST_FAULT', `the task sandbox did not start within ${FRAME_START_MS / 1000} s`);
    }, ms);
  }
}

async function fetchText(url: string): Promise<string> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.text();
}
