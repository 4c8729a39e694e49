/**
 * The whole API a webpvm program sees. A task is a function `(ctx, input) => result`; the
 * runtime hands it a `TaskContext` and runs it in a worker, wherever a slot is free.
 *
 * Inputs and results travel and are stored as JSON, so they must be JSON-serializable: plain
 * objects, arrays, strings, finite numbers, booleans and null. Messages between tasks and
 * checkpoint states carry more: those plus `undefined`, NaN, ±Infinity, -0, bigint,
 * ArrayBuffer, typed arrays and DataView, bit for bit (binary data as raw bytes, never as
 * text). A Map, a Date or a class instance is refused with E_BAD_REQUEST rather than arriving
 * as `{}`, the same way on every path, in one host or across the network.
 */
export interface TaskContext<I = unknown, S = unknown> {
  /** This task's id, `<jobId>.<n>` [pvm_mytid]. It never changes, on whichever host the task runs. */
  readonly tid: string;
  /** The tid of the task that spawned this one; null for a root task [pvm_parent]. */
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
   * (and `random()` continuing where it was). Call it every iteration: unless a move was asked
   * for or the checkpoint interval has passed, it reads one flag and returns, with no copy and no
   * yield. A state is plain data like message data (typed arrays as bytes); a task being moved
   * hands it over for good and does not return from this call. Throws E_BAD_REQUEST for a state
   * that cannot travel (a Map, a Date, a class instance) and E_TOO_LARGE over 128 MiB.
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

  /**
   * Starts one task of this program per input and resolves with their tids, in input order
   * [pvm_spawn]. `name` is a named export of the program, or null for its default export; a
   * name the program does not export makes those tasks fail with E_BAD_PROGRAM. Inputs travel
   * as JSON. Spawned tasks start at once; each has `parent` = this task's tid.
   */
  spawn(name: string | null, inputs: unknown[]): Promise<string[]>;
  /**
   * Sends `data` to the task `to` of this job and returns at once; it never blocks [pvm_send].
   * Messages from one task to another arrive in the order they were sent, exactly once, wherever
   * either task runs. Sending to yourself is allowed. `data` is copied when sent, so the sender
   * may change it afterwards. `tag` is an integer from 0 to 2^31 - 1 that receivers filter on.
   * Throws E_FORBIDDEN for a tid of another job, E_BAD_REQUEST for a bad tid or tag, E_TOO_LARGE
   * for data over the message size limit; nothing is sent then.
   */
  send(to: string, tag: number, data: unknown): void;
  /** `send` to each of `tids`; every tid is checked first, so one bad tid sends nothing [pvm_mcast]. */
  mcast(tids: readonly string[], tag: number, data: unknown): void;
  /**
   * Takes the first message in this task's mailbox that matches the filter (an omitted field
   * matches anything), waiting for one if there is none [pvm_recv]. With `timeoutMs`, resolves
   * null when none came in that time; `timeoutMs: 0` only looks [pvm_trecv, pvm_nrecv]. Several
   * pending calls are served in the order they were made.
   */
  recv(filter?: MessageFilter & { timeoutMs?: undefined }): Promise<ReceivedMessage>;
  recv(filter: MessageFilter & { timeoutMs: number }): Promise<ReceivedMessage | null>;
  recv(filter?: RecvFilter): Promise<ReceivedMessage | null>;
  /** Whether a message matching the filter is in the mailbox; it stays there [pvm_probe]. */
  probe(filter?: MessageFilter): boolean;
  /**
   * Joins the group `group` (created on first use) and resolves with this task's instance number
   * in it: the lowest number no current member holds, from 0 [pvm_joingroup]. Joining a group
   * again gives the same number. A task that ends leaves its groups.
   */
  joinGroup(group: string): Promise<number>;
  /** Leaves the group; its instance number becomes free. Leaving a group one is not in fails with E_CONFLICT [pvm_lvgroup]. */
  leaveGroup(group: string): Promise<void>;
  /** How many tasks are in the group now [pvm_gsize]. */
  groupSize(group: string): Promise<number>;
  /** Sends `data` to every member of the group but this task, as `send` does [pvm_bcast]. */
  bcast(group: string, tag: number, data: unknown): Promise<void>;
  /**
   * Resolves once `count` tasks have called `barrier` on the group; the barrier then opens for
   * the next `count` callers [pvm_barrier].
   */
  barrier(group: string, count: number): Promise<void>;
  /**
   * Asks to be told when each of `tids` ends [pvm_notify]: this task then receives an ordinary
   * message with `from` = that tid, the given `tag` and `data` = `{ tid, ok }` (an `ExitNotice`;
   * `ok` is false when it failed), after every message that task sent this one. A task that has
   * already ended is reported at once.
   */
  notifyExit(tids: readonly string[], tag: number): Promise<void>;
}

/** Which messages `recv` and `probe` take: an omitted field matches any value. */
export interface MessageFilter {
  /** Only messages from this tid. */
  from?: string;
  /** Only messages with this tag. */
  tag?: number;
}

export interface RecvFilter extends MessageFilter {
  /** Give up after this many milliseconds and resolve null; 0 does not wait at all. */
  timeoutMs?: number;
}

/** A message as `recv` hands it over. */
export interface ReceivedMessage {
  from: string;
  tag: number;
  data: unknown;
}

/** The data of the message `notifyExit` sends when a task ends. */
export interface ExitNotice {
  tid: string;
  /** True when the task returned a result, false when it failed. */
  ok: boolean;
}

/** A task function: the default export of a program, or a named one for `spawn`. Its return value is the task's result; a throw is a failure. */
export type TaskFunction<I = unknown, R = unknown, S = unknown> = (ctx: TaskContext<I, S>, input: I) => R | Promise<R>;
