import { z } from 'zod';
import { type ErrorBody, describeIssues } from './errors.ts';
import { CoordinatorMessage, HostMessage } from './host.ts';
import { LIMITS } from './limits.ts';

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: ErrorBody & { ref: string | null } };

function decodeWith<S extends z.ZodType>(schema: S, text: string): Decoded<z.output<S>> {
  if (text.length > LIMITS.frameBytes) {
    return { ok: false, error: { code: 'E_TOO_LARGE', message: `frame over ${LIMITS.frameBytes} bytes`, ref: null } };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: { code: 'E_BAD_FRAME', message: 'frame is not JSON', ref: null } };
  }
  const ref =
    typeof raw === 'object' && raw !== null && typeof (raw as { type?: unknown }).type === 'string'
      ? String((raw as { type: string }).type).slice(0, 64)
      : null;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) return { ok: false, error: { code: 'E_BAD_FRAME', message: describeIssues(parsed.error), ref } };
  return { ok: true, value: parsed.data };
}

export const decodeHostMessage = (text: string): Decoded<HostMessage> => decodeWith(HostMessage, text);
export const decodeCoordinatorMessage = (text: string): Decoded<CoordinatorMessage> =>
  decodeWith(CoordinatorMessage, text);

export function encode(message: HostMessage | CoordinatorMessage): string {
  return JSON.stringify(message);
}
