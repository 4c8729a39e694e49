import { LIMITS, type ErrorBody, type TaskOutcome } from '@webpvm/vm-protocol';

/**
 * Why a value from task code cannot go on the wire, or null when it can. Results and
 * checkpoints travel as JSON inside one frame, so each is held to LIMITS.valueBytes.
 */
export function wireValueProblem(value: unknown, what: string): ErrorBody | null {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    return { code: 'E_TASK_FAILED', message: `the ${what} cannot be sent as JSON: ${String(error)}`.slice(0, LIMITS.logLineChars) };
  }
  if (text !== undefined && text.length > LIMITS.valueBytes) {
    return { code: 'E_TOO_LARGE', message: `the ${what} is over ${LIMITS.valueBytes} bytes as JSON` };
  }
  return null;
}

/** A task's outcome as it goes on the wire, with `sent`: a result that cannot travel fails the task instead. */
export function wireOutcome(outcome: TaskOutcome, sent: Pick<TaskOutcome, 'sent'>): TaskOutcome {
  const { tid, attempt } = outcome;
  if (!outcome.ok) return { tid, attempt, ok: false, error: outcome.error, ...sent };
  const value = outcome.value === undefined ? null : outcome.value;
  const problem = wireValueProblem(value, 'result');
  return problem ? { tid, attempt, ok: false, error: problem, ...sent } : { tid, attempt, ok: true, value, ...sent };
}
