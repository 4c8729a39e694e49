import type { TaskFunction } from './ctx.ts';

export type { ExitNotice, MessageFilter, ReceivedMessage, RecvFilter, TaskContext, TaskFunction } from './ctx.ts';

/**
 * Declares a task: returns `fn` unchanged and only gives it types, so
 * `export default async (ctx, input) => …` with no import is an equally valid program.
 * `I` is the input, `R` the result and `S` the checkpoint state.
 */
export function defineTask<I = unknown, R = unknown, S = unknown>(fn: TaskFunction<I, R, S>): TaskFunction<I, R, S> {
  return fn;
}
