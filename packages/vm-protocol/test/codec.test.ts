import { describe, expect, it } from 'vitest';
import {
  ERROR_CODES,
  ERRORS,
  LIMITS,
  PROTOCOL_VERSION,
  SubmitJobRequest,
  WebpvmError,
  decodeCoordinatorMessage,
  decodeHostMessage,
  encode,
  makeTid,
  parseTid,
} from '../src/index.ts';

const hello = {
  type: 'hello',
  protocol: PROTOCOL_VERSION,
  identity: null,
  slots: 2,
  running: [],
  userAgent: 'test',
  volunteer: 'test-volunteer-key-0123456789abcdefgh',
};

describe('host message decoding', () => {
  it('refuses a volunteer key too short to be a secret', () => {
    const decoded = decodeHostMessage(JSON.stringify({ ...hello, volunteer: 'short' }));
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.error.message).toContain('volunteer');
  });

  it('accepts a well-formed hello and round-trips through encode', () => {
    const decoded = decodeHostMessage(JSON.stringify(hello));
    expect(decoded).toEqual({ ok: true, value: hello });
    if (decoded.ok) expect(JSON.parse(encode(decoded.value))).toEqual(hello);
  });

  it('rejects text that is not JSON with E_BAD_FRAME and no ref', () => {
    expect(decodeHostMessage('{not json')).toEqual({
      ok: false,
      error: { code: 'E_BAD_FRAME', message: 'frame is not JSON', ref: null },
    });
  });

  it('rejects an unknown type, naming it in ref', () => {
    const decoded = decodeHostMessage(JSON.stringify({ type: 'launch-missiles' }));
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) {
      expect(decoded.error.code).toBe('E_BAD_FRAME');
      expect(decoded.error.ref).toBe('launch-missiles');
    }
  });

  it('rejects a field of the wrong type and says which path', () => {
    const decoded = decodeHostMessage(JSON.stringify({ ...hello, slots: 'many' }));
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) {
      expect(decoded.error.code).toBe('E_BAD_FRAME');
      expect(decoded.error.message).toMatch(/^slots:/);
    }
  });

  it('rejects more slots than the limit', () => {
    const decoded = decodeHostMessage(JSON.stringify({ ...hello, slots: LIMITS.slotsPerHost + 1 }));
    expect(decoded.ok).toBe(false);
  });

  it('rejects a result batch over the batch limit and an empty one', () => {
    const item = { tid: 'abcd.1', attempt: 1, ok: true, value: 1 };
    const over = { type: 'results', items: Array.from({ length: LIMITS.itemsPerBatch + 1 }, () => item) };
    expect(decodeHostMessage(JSON.stringify(over)).ok).toBe(false);
    expect(decodeHostMessage(JSON.stringify({ type: 'results', items: [] })).ok).toBe(false);
    expect(decodeHostMessage(JSON.stringify({ type: 'results', items: [item] })).ok).toBe(true);
  });

  it('rejects a failed outcome whose error code is not in the registry', () => {
    const bad = { type: 'results', items: [{ tid: 'abcd.1', attempt: 1, ok: false, error: { code: 'E_NOPE', message: 'x' } }] };
    expect(decodeHostMessage(JSON.stringify(bad)).ok).toBe(false);
  });

  it('rejects a malformed tid', () => {
    const bad = { type: 'checkpoint', tid: '../../etc', attempt: 1, checkpoint: { state: 1, rng: [1, 2, 3, 4] } };
    expect(decodeHostMessage(JSON.stringify(bad)).ok).toBe(false);
  });

  it('refuses a frame over the size limit before parsing it', () => {
    const decoded = decodeHostMessage(' '.repeat(LIMITS.frameBytes + 1));
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.error.code).toBe('E_TOO_LARGE');
  });

  it('decodes coordinator messages with the same rules', () => {
    expect(decodeCoordinatorMessage(JSON.stringify({ type: 'ack', tasks: [{ tid: 'abcd.0', attempt: 1 }] })).ok).toBe(true);
    expect(decodeCoordinatorMessage(JSON.stringify({ type: 'ack', tasks: [{ tid: 'abcd.0' }] })).ok).toBe(false);
  });
});

describe('job submission schema', () => {
  it('fills defaults', () => {
    const job = SubmitJobRequest.parse({ program: 'export default () => 1', inputs: [1] });
    expect(job).toMatchObject({ name: 'job', replicas: 1, quorum: 1, maxAttempts: 3, taskTimeoutMs: null, priority: 1 });
  });

  it('needs exactly one of inputs and main', () => {
    expect(SubmitJobRequest.safeParse({ program: 'x' }).success).toBe(false);
    expect(SubmitJobRequest.safeParse({ program: 'x', inputs: [1], main: 1 }).success).toBe(false);
    expect(SubmitJobRequest.safeParse({ program: 'x', main: { n: 1 } }).success).toBe(true);
  });

  it('refuses a quorum above replicas and unknown fields', () => {
    expect(SubmitJobRequest.safeParse({ program: 'x', inputs: [1], replicas: 2, quorum: 3 }).success).toBe(false);
    expect(SubmitJobRequest.safeParse({ program: 'x', inputs: [1], colour: 'red' }).success).toBe(false);
  });
});

describe('errors and ids', () => {
  it('gives every code an HTTP status and a message', () => {
    for (const code of ERROR_CODES) {
      expect(ERRORS[code].status).toBeGreaterThanOrEqual(400);
      expect(new WebpvmError(code).toJSON()).toEqual({ code, message: ERRORS[code].message });
    }
  });

  it('builds and parses tids', () => {
    expect(parseTid(makeTid('abcd12', 7))).toEqual({ jobId: 'abcd12', index: 7 });
  });
});
