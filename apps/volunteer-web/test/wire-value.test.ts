import { LIMITS } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { wireOutcome } from '../src/host/wire-value.ts';

describe('wireOutcome', () => {
  it('sends a result as it is, undefined as null, with the last seqs the task sent', () => {
    const sent = { sent: [{ to: 'joba.1', seq: 3 }] };
    expect(wireOutcome({ tid: 'joba.0', attempt: 1, ok: true, value: { pi: 3.14 } }, sent)).toEqual({ tid: 'joba.0', attempt: 1, ok: true, value: { pi: 3.14 }, ...sent });
    expect(wireOutcome({ tid: 'joba.0', attempt: 1, ok: true, value: undefined }, {})).toEqual({ tid: 'joba.0', attempt: 1, ok: true, value: null });
    const error = { code: 'E_TASK_FAILED' as const, message: 'boom' };
    expect(wireOutcome({ tid: 'joba.0', attempt: 2, ok: false, error }, sent)).toEqual({ tid: 'joba.0', attempt: 2, ok: false, error, ...sent });
  });

  it('fails the task when its result cannot travel as JSON or is too large for a frame', () => {
    expect(wireOutcome({ tid: 'joba.0', attempt: 1, ok: true, value: 10n }, {})).toMatchObject({ ok: false, error: { code: 'E_TASK_FAILED' } });
    expect(wireOutcome({ tid: 'joba.0', attempt: 1, ok: true, value: 'x'.repeat(LIMITS.valueBytes) }, {})).toEqual({
      tid: 'joba.0',
      attempt: 1,
      ok: false,
      error: { code: 'E_TOO_LARGE', message: `the result is over ${LIMITS.valueBytes} bytes as JSON` },
    });
  });
});
