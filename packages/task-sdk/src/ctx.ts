/**
 * The whole API a webpvm program sees. A task is a function `(ctx, input) => result`; the
 * runtime hands it a `TaskContext` and runs it in a worker, wherever a slot is free.
 *
 * Inputs, results and checkpoint states travel and are stored as JSON, so they must be
 * JSON-serializable: plain objects, arrays, strings, finite numbers, booleans and null.
 */
export interface TaskContext<I = unknown, S = unknown> {
  /** This task's id, `<jobId>.<n>`. It never changes, on whichever host the task runs. */
  readonly tid: string;
  /** The tid of the task that spawned this one; null for a root task (every task, for now). */
  readonly parent: string | null;
  /** The id of the job this task belongs to. */
  readonly jobId: string;
  /** The task's input, the same value as the function's second argument. */
  readonly input: I;
  /**
   * The state of the last checkpoint when the task restarts after a move or a crash; null on a
   * fresh start. Continue from it instead of starting over.
   */
  readonly resume: S | null;
  /**
   * A safe point: the task may be moved from here and will then restart with `resume` = `state`
   * (and `random()` continuing where it was). Call it often; it is cheap, because a state is only
   * taken (copied as JSON) when the checkpoint interval has passed since the last one taken.
   * Throws if a taken state is not JSON-serializable or is over the size limit.
   */
  checkpoint(state: S): Promise<void>;
  /** How far the task is, from 0 to 1, shown on the dashboard. Calls may be dropped to save traffic. */
  progress(fraction: number): void;
  /** One line on the dashboard's log: the arguments formatted like `console.log`, on one line. */
  log(...args: unknown[]): void;
  /**
   * A random number in [0, 1), seeded per task and restored with checkpoints, so a task replayed
   * from a checkpoint draws the same numbers. Use it instead of `Math.random`.
   */
  random(): number;
}

/** A task function: the default export of a program. Its return value is the task's result; a throw is a failure. */
export type TaskFunction<I = unknown, R = unknown, S = unknown> = (ctx: TaskContext<I, S>, input: I) => R | Promise<R>;
