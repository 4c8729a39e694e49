import { WebpvmError } from '@webpvm/vm-protocol/errors';
import { LIMITS } from '@webpvm/vm-protocol/limits';

const utf8 = new TextEncoder();

/**
 * Results and checkpoint states are stored and sent as JSON. Passing them through JSON here
 * shows a task at once what it would see after a move (no `undefined`, `Map`, `Date`…), and
 * enforces the size limit where the program can still catch the error.
 */
export function toJsonValue(value: unknown, what: string): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new WebpvmError('E_TASK_FAILED', `${what} is not JSON-serializable: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (text === undefined) return null;
  // Only a long text can be over the limit in UTF-8 bytes; encoding every value would cost more.
  if (text.length * 3 > LIMITS.valueBytes) {
    const bytes = utf8.encode(text).byteLength;
    if (bytes > LIMITS.valueBytes) {
      throw new WebpvmError('E_TOO_LARGE', `${what} is ${bytes} bytes as JSON, over the limit of ${LIMITS.valueBytes}`);
    }
  }
  return JSON.parse(text);
}
