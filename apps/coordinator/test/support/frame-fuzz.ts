import { PROTOCOL_VERSION, encodeEnvelope, encodeMessage } from '@webpvm/vm-protocol';
import fc from 'fast-check';

/**
 * Frames a stranger might send the coordinator's host socket: well-formed frames of every type
 * (against the tids of a real job, so they reach deep into the scheduler), the same with a field
 * replaced, dropped or added, arbitrary JSON and text, and binary envelopes valid and not.
 */
export function hostFrames(jobId: string): fc.Arbitrary<string | Uint8Array> {
  const tid = fc.oneof(fc.nat(600).map((n) => `${jobId}.${n}`), fc.string({ maxLength: 70 }));
  const attempt = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer(), fc.double());
  const ref = fc.record({ tid, attempt });
  const value = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant(null));
  const wellFormed: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
    fc.record({ type: fc.constant('heartbeat') }),
    fc.record({ type: fc.constant('capacity'), slots: fc.integer({ min: -2, max: 70 }) }),
    fc.record({ type: fc.constant('progress'), items: fc.array(fc.record({ tid, attempt, fraction: fc.double({ min: -1, max: 2 }) }), { maxLength: 5 }) }),
    fc.record({ type: fc.constant('checkpoint'), tid, attempt, checkpoint: fc.record({ state: value, rng: fc.array(fc.integer(), { minLength: 4, maxLength: 4 }) }) }),
    fc.record({
      type: fc.constant('results'),
      items: fc.array(fc.oneof(fc.record({ tid, attempt, ok: fc.constant(true), value }), fc.record({ tid, attempt, ok: fc.constant(false), error: fc.record({ code: fc.constantFrom('E_TASK_FAILED', 'E_NOPE'), message: fc.string() }) })), { maxLength: 5 }),
    }),
    fc.record({ type: fc.constant('log'), tid, attempt, line: fc.string({ maxLength: 100 }) }),
    fc.record({ type: fc.constant('request'), tid, attempt, requestId: fc.integer({ min: -1, max: 5 }), op: fc.oneof(fc.record({ kind: fc.constant('spawn'), name: fc.constant(null), inputs: fc.array(value, { maxLength: 3 }) }), fc.record({ kind: fc.constant('barrier'), group: fc.string(), count: fc.integer() }), fc.jsonValue()) }),
    fc.record({ type: fc.constant('locate'), tids: fc.array(tid, { maxLength: 5 }) }),
    fc.record({ type: fc.constant('migrating'), tasks: fc.array(ref, { maxLength: 3 }), reason: fc.constantFrom('hidden', 'input', 'order', 'nope') }),
    fc.record({ type: fc.constant('migrated'), tid, attempt, imageBytes: fc.oneof(fc.constant(null), fc.nat()), via: fc.constantFrom('coordinator', 'channel'), obtrusivenessMs: fc.nat(), frozen: fc.boolean() }),
    fc.record({ type: fc.constant('resumed'), tid, attempt }),
    fc.record({ type: fc.constant('image-missing'), tid, attempt }),
    fc.record({ type: fc.constant('lane-open'), from: tid, to: tid }),
    fc.record({ type: fc.constant('lane-declined'), token: fc.string({ maxLength: 80 }) }),
    fc.record({ type: fc.constant('withdrawn'), tasks: fc.array(ref, { maxLength: 3 }) }),
    fc.record({ type: fc.constant('hello'), protocol: fc.constantFrom(PROTOCOL_VERSION, 0), identity: fc.constant(null), slots: fc.nat(4), running: fc.array(ref, { maxLength: 3 }), userAgent: fc.string(), volunteer: fc.string({ minLength: 32, maxLength: 40 }) }),
  );
  const mutated = fc.tuple(wellFormed, fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), fc.nat(3)).map(([frame, key, v, how]) => {
    const keys = Object.keys(frame).filter((k) => k !== 'type');
    const victim = keys[key.length % Math.max(1, keys.length)] ?? key;
    const copy: Record<string, unknown> = { ...frame };
    if (how === 0) copy[victim] = v;
    else if (how === 1) delete copy[victim];
    else copy[key || 'extra'] = v;
    return copy;
  });
  /** Envelopes the host has no business sending, or that do not parse: the coordinator only relays for its own tasks. */
  const encoded = (make: () => Uint8Array) => {
    try {
      return make();
    } catch {
      return new Uint8Array([0xff]);
    }
  };
  const envelope = fc.oneof(
    fc.record({ from: tid, to: tid, tag: fc.integer(), seq: fc.integer({ min: -1, max: 100 }), data: value }).map((m) => encoded(() => encodeMessage(m))),
    fc.record({ of: tid, by: tid, seq: fc.integer({ min: -1, max: 100 }) }).map((h) => encoded(() => encodeEnvelope({ type: 'ack', ...h }))),
    fc.uint8Array({ maxLength: 300 }),
  );
  return fc.oneof(
    { weight: 6, arbitrary: wellFormed.map((f) => JSON.stringify(f)) },
    { weight: 6, arbitrary: mutated.map((f) => JSON.stringify(f)) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 2, arbitrary: envelope },
  );
}
