import { Worker } from 'node:worker_threads';
import {
  FromWorker,
  describeIssues,
  readSealed,
  type ErrorBody,
  type TaskAssignment,
  type ToWorker,
} from '@webpvm/vm-protocol';
import { JobVm, encodeNotice, type VmAnswer, type VmEffect, type VmTask } from '../vm/index.ts';
import type { RunLocalResult } from './run-local.ts';

export interface LocalJobConfig {
  programUrl: string;
  /** The bundled worker entry (task-worker.ts). */
  workerFile: string;
  /** The job's seed: each task's `ctx.random` seed derives from it (JobVm). */
  seed: number;
  /** Worker threads for the root tasks; a spawned task always gets a thread of its own. */
  rootThreads: number;
  onLog: (tid: string, line: string) => void;
  onProgress: ((done: number, total: number) => void) | undefined;
}

type FromWorkerOf<T extends FromWorker['type']> = Extract<FromWorker, { type: T }>;
/** What a worker says of the one task it runs. */
type TaskReport = Exclude<FromWorker, { type: 'dones' | 'withdrawn' }>;

interface LocalTask {
  readonly assignment: TaskAssignment;
  state: 'waiting' | 'running' | 'ended';
  thread: TaskThread | null;
  /** Envelopes of the messages that came before the task started, delivered right after its start. */
  inbox: Uint8Array[];
  readonly ended: Promise<VmAnswer>;
  settle: (outcome: VmAnswer) => void;
}

const JOB_ID = 'local';
/** Checkpoints go nowhere locally, but taking one now and then still shows a state that cannot be serialized. */
const CHECKPOINT_INTERVAL_MS = 1000;

/**
 * One job run in Node worker_threads: the virtual machine a coordinator and its hosts would be,
 * in one process. The PVM services are the coordinator's own (JobVm); this class only carries
 * out their effects with threads. Root tasks share a pool of threads; each spawned task starts
 * at once in a thread of its own (tasks of a ring wait for each other: none may wait for a
 * slot). Messages are routed in the order they are sent, so per-pair order holds by
 * construction; an exit notice is numbered after its task's last message to the notifier.
 */
export class LocalJob {
  readonly #config: LocalJobConfig;
  readonly #vm: JobVm;
  readonly #tasks = new Map<string, LocalTask>();
  readonly #threads = new Set<TaskThread>();
  /** Per running task, the last seq it sent each receiver: its exit notices come next. */
  readonly #lastSent = new Map<string, Map<string, number>>();
  #closed = false;

  constructor(config: LocalJobConfig) {
    this.#config = config;
    this.#vm = new JobVm(JOB_ID, config.seed);
  }

  /** Runs one root task per input; resolves when all roots have ended, ending every task still running. */
  async run(inputs: readonly unknown[]): Promise<RunLocalResult> {
    const roots = inputs.map((input) => this.#add(this.#vm.add(input, null, null)));
    const results: unknown[] = roots.map(() => null);
    const errors: (ErrorBody | null)[] = roots.map(() => null);
    let next = 0;
    let finished = 0;

    const rootThread = async (): Promise<void> => {
      let thread: TaskThread | null = null;
      for (let i = next++; i < roots.length; i = next++) {
        if (!thread?.alive) thread = this.#newThread();
        const outcome = await this.#start(roots[i]!, thread);
        if (outcome.ok) results[i] = outcome.value;
        else errors[i] = outcome.error;
        this.#config.onProgress?.(++finished, roots.length);
      }
    };

    try {
      await Promise.all(Array.from({ length: this.#config.rootThreads }, rootThread));
    } finally {
      this.#closed = true;
      await Promise.all([...this.#threads].map((thread) => thread.terminate()));
    }
    return { results, errors };
  }

  #add(task: VmTask): LocalTask {
    let settle!: (outcome: VmAnswer) => void;
    const ended = new Promise<VmAnswer>((resolve) => (settle = resolve));
    const local: LocalTask = {
      assignment: {
        tid: task.tid,
        attempt: 1,
        jobId: JOB_ID,
        parent: task.parent,
        name: task.name,
        programUrl: this.#config.programUrl,
        input: task.input,
        resume: null,
        seed: task.seed,
        timeoutMs: null,
      },
      state: 'waiting',
      thread: null,
      inbox: [],
      ended,
      settle,
    };
    this.#tasks.set(task.tid, local);
    return local;
  }

  #newThread(): TaskThread {
    const thread = new TaskThread(
      this.#config.workerFile,
      (message) => this.#onMessage(thread, message),
      (reason) => {
        this.#threads.delete(thread);
        const task = thread.task;
        if (task && !this.#closed) this.#end(task, { ok: false, error: { code: 'E_TASK_FAILED', message: reason } });
      },
    );
    this.#threads.add(thread);
    return thread;
  }

  #start(task: LocalTask, thread: TaskThread): Promise<VmAnswer> {
    task.state = 'running';
    task.thread = thread;
    thread.task = task;
    const { tid } = task.assignment;
    // One process crashes whole: no receiver outlives a sender to need its log.
    thread.post({ type: 'start', task: task.assignment, checkpointIntervalMs: CHECKPOINT_INTERVAL_MS, senderLog: false });
    if (task.inbox.length > 0) thread.post({ type: 'deliver', tid, envelopes: task.inbox });
    task.inbox = [];
    return task.ended;
  }

  #end(task: LocalTask, outcome: VmAnswer): void {
    const { tid, parent } = task.assignment;
    task.state = 'ended';
    const thread = task.thread!;
    thread.task = null;
    this.#apply(this.#vm.ended(tid, outcome.ok, this.#lastSent.get(tid) ?? new Map()));
    this.#lastSent.delete(tid);
    if (parent !== null) {
      if (!outcome.ok) this.#config.onLog(tid, `task failed: ${outcome.error.message} (${outcome.error.code})`);
      this.#threads.delete(thread);
      void thread.terminate();
    }
    task.settle(outcome);
  }

  #onMessage(thread: TaskThread, raw: unknown): void {
    if (this.#closed) return;
    const parsed = FromWorker.safeParse(raw);
    const task = thread.task;
    if (!task) return;
    if (!parsed.success) {
      this.#config.onLog(task.assignment.tid, `the worker sent a message that does not match the protocol: ${describeIssues(parsed.error)}`);
      return;
    }
    const message = parsed.data;
    // Tasks go one at a time with `start`, never in `starts`: nothing comes in batches here.
    if (message.type === 'dones' || message.type === 'withdrawn') return;
    // A worker speaks only for the task it runs.
    if (message.tid !== task.assignment.tid) return;
    (this.#handlers[message.type] as (task: LocalTask, message: FromWorker) => void)(task, message);
  }

  readonly #handlers: { [T in TaskReport['type']]: (task: LocalTask, message: FromWorkerOf<T>) => void } = {
    checkpoint: () => {},
    progress: () => {},
    // In one process there is no replay log to keep and no lane to give: what a worker says of them is ignored.
    delivered: () => {},
    'lane-wrote': () => {},
    'lane-sent': () => {},
    'lane-closed': () => {},
    resent: () => {},
    'ended-log': () => {},
    'log-full': () => {},
    log: (task, { line }) => this.#config.onLog(task.assignment.tid, line),
    done: (task, done) => this.#end(task, done.ok ? { ok: true, value: done.value } : { ok: false, error: done.error }),
    send: (task, { envelope }) => {
      const { tid } = task.assignment;
      const read = readSealed(envelope);
      if (!read.ok || read.message.from !== tid || read.message.seq < 1) {
        this.#config.onLog(tid, `the worker sent what is not a message of its own: ${read.ok ? `from ${read.message.from}, seq ${read.message.seq}` : read.message}`);
        return;
      }
      const { to, seq } = read.message;
      const sent = this.#lastSent.get(tid) ?? new Map<string, number>();
      this.#lastSent.set(tid, sent.set(to, seq));
      const standing = this.#vm.standing(to);
      if (standing === 'live') this.#deliver(this.#tasks.get(to)!, envelope);
      else if (standing !== 'ended') this.#config.onLog(tid, `a message to ${to} was dropped: there is no such task in this job`);
    },
    request: (task, { requestId, op }) => {
      const { answer, effects } = this.#vm.request(task.assignment.tid, requestId, op);
      this.#apply(effects);
      if (answer !== 'later') this.#reply(task, requestId, answer);
    },
  };

  #apply(effects: VmEffect[]): void {
    for (const effect of effects) {
      if (effect.kind === 'spawn') for (const task of effect.tasks) void this.#start(this.#add(task), this.#newThread());
      else if (effect.kind === 'reply') this.#reply(this.#tasks.get(effect.tid)!, effect.requestId, effect.answer);
      else {
        const target = this.#tasks.get(effect.notice.to);
        if (target) this.#deliver(target, encodeNotice(effect.notice));
      }
    }
  }

  #reply(task: LocalTask, requestId: number, answer: VmAnswer): void {
    if (task.state === 'running') task.thread!.post({ type: 'reply', tid: task.assignment.tid, requestId, ...answer });
  }

  #deliver(target: LocalTask, envelope: Uint8Array): void {
    if (target.state === 'waiting') target.inbox.push(envelope);
    else if (target.state === 'running') target.thread!.post({ type: 'deliver', tid: target.assignment.tid, envelopes: [envelope] });
  }
}

/** One worker_thread, running one task at a time. */
class TaskThread {
  alive = true;
  task: LocalTask | null = null;
  readonly #worker: Worker;

  constructor(file: string, onMessage: (message: unknown) => void, onDeath: (reason: string) => void) {
    this.#worker = new Worker(file);
    const die = (reason: string): void => {
      if (!this.alive) return;
      this.alive = false;
      onDeath(reason);
    };
    this.#worker.on('message', onMessage);
    this.#worker.on('error', (error: unknown) => die(error instanceof Error ? error.message : String(error)));
    this.#worker.on('exit', (code) => die(`the worker thread exited with code ${code}`));
  }

  post(message: ToWorker): void {
    this.#worker.postMessage(message);
  }

  async terminate(): Promise<void> {
    await this.#worker.terminate();
  }
}
