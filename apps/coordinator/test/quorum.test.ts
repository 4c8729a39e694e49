import { describe, expect, it } from 'vitest';
import { type Ballot, Quorum } from '../src/scheduler/quorum.ts';
import { agreement, canonicalJson, withinTolerance } from '../src/scheduler/result-agreement.ts';

const ok = (volunteerId: string, value: unknown, attempt = 1): Ballot => ({ volunteerId, attempt, ok: true, value, error: null });
const failed = (volunteerId: string, message: string): Ballot => ({ volunteerId, attempt: 1, ok: false, value: null, error: { code: 'E_TASK_FAILED', message } });
const bytes = agreement(null, null);

describe('a quorum of replicas', () => {
  it('accepts the outcome quorum ballots agree on, and names those that dissented', () => {
    const q = new Quorum(2, 2, 5, bytes);
    expect(q.cast(ok('a', { x: 1, y: 2 }))).toEqual({ kind: 'waiting' });
    const verdict = q.cast(ok('b', { y: 2, x: 1 }));
    expect(verdict).toMatchObject({ kind: 'agreed', outcome: { value: { x: 1, y: 2 } } });
    if (verdict.kind === 'agreed') expect(verdict.agreeing.map((b) => b.volunteerId)).toEqual(['a', 'b']);
  });

  it('asks for one more replica at a time while none agree, then sides with the majority', () => {
    const q = new Quorum(2, 2, 5, bytes);
    q.cast(ok('honest', 4));
    expect(q.cast(ok('liar', 5))).toEqual({ kind: 'more' });
    expect(q.open).toBe(1);
    const verdict = q.cast(ok('other', 4));
    expect(verdict.kind).toBe('agreed');
    if (verdict.kind === 'agreed') {
      expect(verdict.outcome.value).toBe(4);
      expect(verdict.dissenting.map((b) => b.volunteerId)).toEqual(['liar']);
    }
  });

  it('fails the task when the cap of replicas is reached with no quorum', () => {
    const q = new Quorum(2, 2, 3, bytes);
    q.cast(ok('a', 1));
    q.cast(ok('b', 2));
    expect(q.cast(ok('c', 3))).toMatchObject({ kind: 'disagreed', ballots: [{ value: 1 }, { value: 2 }, { value: 3 }] });
  });

  it('lets errors agree with errors only, whatever their messages', () => {
    const q = new Quorum(2, 2, 5, bytes);
    q.cast(failed('a', 'out of range at 0x1f'));
    expect(q.cast(ok('b', null))).toEqual({ kind: 'more' });
    expect(q.cast(failed('c', 'out of range at 0x2c'))).toMatchObject({ kind: 'agreed', outcome: { ok: false } });
  });

  it('waits for replicas still out before asking for more', () => {
    const q = new Quorum(2, 3, 7, bytes);
    q.cast(ok('a', 1));
    expect(q.cast(ok('b', 2))).toEqual({ kind: 'waiting' });
    expect(q.cast(ok('c', 2))).toMatchObject({ kind: 'agreed', outcome: { value: 2 } });
  });
});

describe('results that agree', () => {
  it('compare canonical JSON by default: key order does not matter, a digit does', () => {
    expect(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null })).toBe('{"a":null,"b":[1,{"c":2,"d":1}]}');
    expect(bytes({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(true);
    expect(bytes({ a: 1, b: 2 }, { a: 1, b: 3 })).toBe(false);
    expect(bytes(0.1 + 0.2, 0.3)).toBe(false);
  });

  it('compare numbers within a tolerance, relative above 1 and absolute below, in the same shape', () => {
    expect(withinTolerance(0.1 + 0.2, 0.3, 1e-9)).toBe(true);
    expect(withinTolerance(1e6, 1e6 + 0.5, 1e-6)).toBe(true);
    expect(withinTolerance(1e6, 1e6 + 5, 1e-6)).toBe(false);
    expect(withinTolerance({ xs: [1, 2.0000001], tag: 'a' }, { xs: [1, 2], tag: 'a' }, 1e-6)).toBe(true);
    expect(withinTolerance({ xs: [1, 2] }, { xs: [1, 2, 3] }, 1e-6)).toBe(false);
    expect(withinTolerance({ tag: 'a' }, { tag: 'b' }, 1)).toBe(false);
    expect(withinTolerance({ a: 1 }, { b: 1 }, 1)).toBe(false);
    expect(withinTolerance(NaN, NaN, 0)).toBe(true);
  });
});
