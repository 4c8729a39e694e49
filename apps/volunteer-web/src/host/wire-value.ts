import { LIMITS, type ErrorBody } from '@webpvm/vm-protocol';

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
