import { z } from 'zod';
import { type ErrorBody, describeIssues } from './errors.ts';
import { CoordinatorMessage, HostMessage } from './host.ts';
import { LIMITS } from './limits.ts';

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: ErrorBody & { ref: string | null } };

const utf8 = new TextDecoder();

/** A frame's text, or its UTF-8 bytes: a frame too long is refused before it is decoded at all. */
function decodeWith<S extends z.ZodType>(schema: S, frame: string | Uint8Array): Decoded<z.output<S>> {
  if ((typeof frame === 'string' ? frame.length : frame.byteLength) > LIMITS.frameBytes) {
    return { ok: false, error: { code: 'E_TOO_LARGE', message: `frame over ${LIMITS.frameBytes} bytes`, ref: null } };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(typeof frame === 'string' ? frame : utf8.decode(frame));
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

export const decodeHostMessage = (frame: string | Uint8Array): Decoded<HostMessage> => decodeWith(HostMessage, frame);
export const decodeCoordinatorMessage = (text: string): Decoded<CoordinatorMessage> =>
  decodeWith(CoordinatorMessage, text);

export function encode(message: HostMessage | CoordinatorMessage): string {
  return JSON.stringify(message);
}
