import {
  ToWorker,
  WebpvmError,
  describeIssues,
  type ErrorCode,
  type FromWorker,
  type TaskAssignment,
} from '@webpvm/vm-protocol';
import type { TaskContext, TaskFunction } from '../ctx.ts';
import { Rng } from './determinism.ts';
import { toJsonValue } from './json-value.ts';
import { formatLogLine, truncateLine } from './log-line.ts';

export { Rng, taskSeed, type RngState } from './determinism.ts';

/**
 * What the runtime needs from where it runs: `self` in a browser Web Worker, or a small adapter
 * around `parentPort` in a Node worker_thread.
 */
export interface WorkerScope {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
}

/** The least time between two progress messages of one task: the dashboard needs no more. */
const PROGRESS_INTERVAL_MS = 200;

const RESOLVED = Promise.resolve();

type StartTask = Extract<ToWorker, { type: 'start' }>;
type ProgramModule = Record<string, unknown>;
type Post = (message: FromWorker) => void;

/**
 * Runs tasks in this worker as `start` messages arrive, one at a time and in order. A worker is
 * reused for many tasks, so everything about one task lives in that task's context; only the
 * imported programs are kept, by URL.
 */
export function runTaskWorker(scope: WorkerScope): void {
  const post: Post = (message) => scope.postMessage(message);
  const programs = new Map<string, Promise<ProgramModule>>();
  let queue = RESOLVED;

  const load = (url: string): Promise<ProgramModule> => {
    let program = programs.get(url);
    if (!program) {
      program = import(/* @vite-ignore */ url) as Promise<ProgramModule>;
      programs.set(url, program);
      // A failed import may be a passing network fault: let the next task try again.
      program.catch(() => programs.delete(url));
    }
    return program;
  };

  scope.addEventListener('message', (event) => {
    const parsed = ToWorker.safeParse(event.data);
    if (!parsed.success) {
      post({ type: 'done', tid: tidOf(event.data), ok: false, error: { code: 'E_BAD_FRAME', message: describeIssues(parsed.error) } });
      return;
    }
    const message = parsed.data;
    switch (message.type) {
      case 'start':
        queue = queue
          .then(() => runTask(message, load, post))
          .catch((error: unknown) => console.error('webpvm runtime: cannot report to the host', error));
        break;
    }
  });
}

async function runTask(start: StartTask, load: (url: string) => Promise<ProgramModule>, post: Post): Promise<void> {
  const { task } = start;
  const fail = (code: ErrorCode, message: string): void =>
    post({ type: 'done', tid: task.tid, ok: false, error: { code, message: truncateLine(message) } });

  let program: ProgramModule;
  try {
    program = await load(task.programUrl);
  } catch (error) {
    fail('E_BAD_PROGRAM', `the program cannot be imported: ${messageOf(error)}`);
    return;
  }
  const main = program.default;
  if (typeof main !== 'function') {
    fail('E_BAD_PROGRAM', 'the program has no callable default export');
    return;
  }

  let value: unknown;
  try {
    value = await (main as TaskFunction)(createContext(task, start.checkpointIntervalMs, post), task.input);
  } catch (error) {
    if (error instanceof Error && error.stack) post({ type: 'log', tid: task.tid, line: formatLogLine([error]) });
    fail('E_TASK_FAILED', messageOf(error));
    return;
  }
  try {
    post({ type: 'done', tid: task.tid, ok: true, value: toJsonValue(value, 'the result') });
  } catch (error) {
    fail(error instanceof WebpvmError ? error.code : 'E_TASK_FAILED', messageOf(error));
  }
}

function createContext(task: TaskAssignment, checkpointIntervalMs: number, post: Post): TaskContext {
  const { tid } = task;
  const rng = task.resume ? Rng.fromState(task.resume.rng) : Rng.fromSeed(task.seed);
  let lastCheckpointAt = -Infinity;
  let lastProgressAt = -Infinity;

  return {
    tid,
    parent: null,
    jobId: task.jobId,
    input: task.input,
    resume: task.resume?.state ?? null,
    checkpoint: (state) => {
      const now = performance.now();
      if (now - lastCheckpointAt >= checkpointIntervalMs) {
        post({ type: 'checkpoint', tid, checkpoint: { state: toJsonValue(state, 'the checkpoint state'), rng: rng.state() } });
        lastCheckpointAt = now;
      }
      return RESOLVED;
    },
    progress: (fraction) => {
      if (Number.isNaN(fraction)) return;
      const now = performance.now();
      if (now - lastProgressAt < PROGRESS_INTERVAL_MS) return;
      lastProgressAt = now;
      post({ type: 'progress', tid, fraction: Math.min(1, Math.max(0, fraction)) });
    },
    log: (...args) => post({ type: 'log', tid, line: formatLogLine(args) }),
    random: () => rng.random(),
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The tid of a message that failed to parse, when it has one, so the host can tell which task it was. */
function tidOf(data: unknown): string {
  const tid = (data as { task?: { tid?: unknown } } | null)?.task?.tid;
  return typeof tid === 'string' ? tid.slice(0, 64) : '';
}
