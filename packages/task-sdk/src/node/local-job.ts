import { Worker } from 'node:worker_threads';
import {
  FromWorker,
  LIMITS,
  WebpvmError,
  describeIssues,
  encodeMessage,
  makeTid,
  readSealed,
  type ErrorBody,
  type TaskAssignment,
  type TaskOp,
  type ToWorker,
} from '@webpvm/vm-protocol';
import { taskSeed } from '../runtime/determinism.ts';
import { TaskGroups } from '../groups/task-groups.ts';
import type { RunLocalResult } from './run-local.ts';

export interface LocalJobConfig {
  programUrl: string;
  /** The bundled worker entry (task-worker.ts). */
  workerFile: string;
  seed: number;
  /** Worker threads for the root tasks; a spawned task always gets a thread of its own. */
  lanes: number;
  onLog: (tid: string, line: string) => void;
  onProgress: ((done: number, total: number) => void) | undefined;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: ErrorBody };
type FromWorkerOf<T extends FromWorker['type']> = Extract<FromWorker, { type: T }>;
type OpOf<K extends TaskOp['kind']> = Extract<TaskOp, { kind: K }>;

interface LocalTask {
  readonly assignment: TaskAssignment;
  state: 'waiting' | 'running' | 'ended';
  thread: TaskThread | null;
  /** Envelopes of the messages that came before the task started, delivered right after its start. */
  inbox: Uint8Array[];
  /** The tasks to tell when this one ends, each with its tag. */
  notify: { tid: string; tag: number }[];
  ok: boolean;
  readonly ended: Promise<Outcome>;
  settle: (outcome: Outcome) => void;
}

const JOB_ID = 'local';
/** Checkpoints go nowhere locally, but taking one now and then still shows a state that cannot be serialized. */
const CHECKPOINT_INTERVAL_MS = 1000;

/**
 * One job run in Node worker_threads: the virtual machine a coordinator and its hosts would be,
 * in one process. Root tasks share a pool of threads; each spawned task starts at once in a
 * thread of its own (tasks of a ring wait for each other: none may wait for a slot). Messages
 * are routed in the order they are sent, so per-pair order and exit notifications coming after
 * a task's last message hold by construction.
 */
export class LocalJob {
  readonly #config: LocalJobConfig;
  readonly #tasks = new Map<string, LocalTask>();
  readonly #groups = new TaskGroups<{ tid: string; release: () => void }>();
  readonly #threads = new Set<TaskThread>();
  #closed = false;

  constructor(config: LocalJobConfig) {
    this.#config = config;
  }

  /** Runs one root task per input; resolves when all roots have ended, ending every task still running. */
  async run(inputs: readonly unknown[]): Promise<RunLocalResult> {
    const roots = inputs.map((input) => this.#add(input, null, null));
    const results: unknown[] = roots.map(() => null);
    const errors: (ErrorBody | null)[] = roots.map(() => null);
    let next = 0;
    let finished = 0;

    const lane = async (): Promise<void> => {
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
      await Promise.all(Array.from({ length: this.#config.lanes }, lane));
    } finally {
      this.#closed = true;
      await Promise.all([...this.#threads].map((thread) => thread.terminate()));
    }
    return { results, errors };
  }

  #add(input: unknown, parent: string | null, name: string | null): LocalTask {
    const index = this.#tasks.size;
    const tid = makeTid(JOB_ID, index);
    let settle!: (outcome: Outcome) => void;
    const ended = new Promise<Outcome>((resolve) => (settle = resolve));
    const task: LocalTask = {
      assignment: {
        tid,
        attempt: 1,
        jobId: JOB_ID,
        parent,
        name,
        programUrl: this.#config.programUrl,
        input,
        resume: null,
        seed: taskSeed(this.#config.seed, index),
        timeoutMs: null,
      },
      state: 'waiting',
      thread: null,
      inbox: [],
      notify: [],
      ok: false,
      ended,
      settle,
    };
    this.#tasks.set(tid, task);
    return task;
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

  #start(task: LocalTask, thread: TaskThread): Promise<Outcome> {
    task.state = 'running';
    task.thread = thread;
    thread.task = task;
    const { tid } = task.assignment;
    thread.post({ type: 'start', task: task.assignment, checkpointIntervalMs: CHECKPOINT_INTERVAL_MS });
    if (task.inbox.length > 0) thread.post({ type: 'deliver', tid, envelopes: task.inbox });
    task.inbox = [];
    return task.ended;
  }

  #end(task: LocalTask, outcome: Outcome): void {
    const { tid, parent } = task.assignment;
    task.state = 'ended';
    task.ok = outcome.ok;
    const thread = task.thread!;
    thread.task = null;
    this.#groups.leaveAll(tid);
    for (const { tid: notifier, tag } of task.notify) this.#notice(task, notifier, tag);
    task.notify = [];
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
    // A worker speaks only for the task it runs.
    if (parsed.data.tid !== task.assignment.tid) return;
    (this.#handlers[parsed.data.type] as (task: LocalTask, message: FromWorker) => void)(task, parsed.data);
  }

  readonly #handlers: { [T in FromWorker['type']]: (task: LocalTask, message: FromWorkerOf<T>) => void } = {
    checkpoint: () => {},
    progress: () => {},
    // In one process there is no replay log to keep and no lane to give: what a worker says of them is ignored.
    delivered: () => {},
    'lane-sent': () => {},
    'lane-closed': () => {},
    log: (task, { line }) => this.#config.onLog(task.assignment.tid, line),
    done: (task, done) => this.#end(task, done.ok ? { ok: true, value: done.value } : { ok: false, error: done.error }),
    send: (task, { envelope }) => {
      const { tid } = task.assignment;
      const read = readSealed(envelope);
      if (!read.ok || read.message.from !== tid || read.message.seq < 1) {
        this.#config.onLog(tid, `the worker sent what is not a message of its own: ${read.ok ? `from ${read.message.from}, seq ${read.message.seq}` : read.message}`);
        return;
      }
      const { to } = read.message;
      const target = this.#tasks.get(to);
      if (target) this.#deliver(target, envelope);
      else this.#config.onLog(tid, `a message to ${to} was dropped: there is no such task in this job`);
    },
    request: (task, { requestId, op }) => {
      const { tid } = task.assignment;
      const reply = (answer: { ok: true; value: unknown } | { ok: false; error: ErrorBody }): void => {
        if (task.state === 'running') task.thread!.post({ type: 'reply', tid, requestId, ...answer });
      };
      new Promise((resolve) => resolve((this.#ops[op.kind] as (op: TaskOp, task: LocalTask) => unknown)(op, task))).then(
        (value) => reply({ ok: true, value: value ?? null }),
        (error: unknown) => reply({ ok: false, error: errorBody(error) }),
      );
    },
  };

  readonly #ops: { [K in TaskOp['kind']]: (op: OpOf<K>, task: LocalTask) => unknown } = {
    spawn: ({ name, inputs }, parent) => {
      if (this.#tasks.size + inputs.length > LIMITS.tasksPerJob) {
        throw new WebpvmError('E_TOO_LARGE', `a job holds at most ${LIMITS.tasksPerJob} tasks`);
      }
      return inputs.map((input) => {
        const task = this.#add(input, parent.assignment.tid, name);
        void this.#start(task, this.#newThread());
        return task.assignment.tid;
      });
    },
    join: ({ group }, task) => this.#groups.join(group, task.assignment.tid),
    leave: ({ group }, task) => {
      if (!this.#groups.leave(group, task.assignment.tid)) {
        throw new WebpvmError('E_CONFLICT', `${task.assignment.tid} is not in group ${group}`);
      }
    },
    size: ({ group }) => this.#groups.size(group),
    members: ({ group }) => this.#groups.members(group),
    barrier: ({ group, count }, task) =>
      new Promise<void>((release) => {
        const released = this.#groups.barrier(group, count, { tid: task.assignment.tid, release });
        if (released === null) throw new WebpvmError('E_CONFLICT', `barrier ${group} is already waiting for another count`);
        for (const waiter of released) waiter.release();
      }),
    notify: ({ tids, tag }, notifier) => {
      const watched = tids.map((tid) => {
        const task = this.#tasks.get(tid);
        if (!task) throw new WebpvmError('E_NOT_FOUND', `there is no task ${tid} in this job`);
        return task;
      });
      for (const task of watched) {
        if (task.state === 'ended') this.#notice(task, notifier.assignment.tid, tag);
        else task.notify.push({ tid: notifier.assignment.tid, tag });
      }
    },
  };

  /** The message that tells `notifier` that `ended` has ended: seq 0, like every system message. */
  #notice(ended: LocalTask, notifier: string, tag: number): void {
    const target = this.#tasks.get(notifier);
    const { tid } = ended.assignment;
    if (target) this.#deliver(target, encodeMessage({ from: tid, to: notifier, tag, seq: 0, data: { tid, ok: ended.ok } }));
  }

  #deliver(target: LocalTask, envelope: Uint8Array): void {
    if (target.state === 'waiting') target.inbox.push(envelope);
    else if (target.state === 'running') target.thread!.post({ type: 'deliver', tid: target.assignment.tid, envelopes: [envelope] });
  }
}

function errorBody(error: unknown): ErrorBody {
  if (error instanceof WebpvmError) return error.toJSON();
  return { code: 'E_INTERNAL', message: error instanceof Error ? error.message : String(error) };
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
