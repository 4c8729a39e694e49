import type { ResultValidator } from './result-validator.ts';

/** Whether two results of one task agree, by the job's rule. */
export type Agree = (a: unknown, b: unknown) => boolean;

/** JSON with every object's keys in order: two hosts that built the same value in another order still match. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/**
 * Same shape, same strings and booleans, and numbers within `tolerance` of each other — relative
 * to the larger of the two, absolute below 1 — as floating point on two CPUs (or two JITs) gives.
 */
export function withinTolerance(a: unknown, b: unknown, tolerance: number): boolean {
  if (typeof a === 'number' && typeof b === 'number') {
    if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
    return a === b || Math.abs(a - b) <= tolerance * Math.max(1, Math.abs(a), Math.abs(b));
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => withinTolerance(x, b[i], tolerance));
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && withinTolerance((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], tolerance));
  }
  return a === b;
}

/**
 * The job's rule for results that agree: its program's `validate(a, b)` when it exports one (run in
 * QuickJS, result-validator.ts: a validate that throws or overruns its limits says no), else numbers
 * within its `tolerance`, else the same canonical JSON.
 */
export function agreement(tolerance: number | null, validator: ResultValidator | null): Agree {
  if (validator) {
    return (a, b) => {
      try {
        return validator.agree(a, b);
      } catch {
        return false;
      }
    };
  }
  if (tolerance !== null) return (a, b) => withinTolerance(a, b, tolerance);
  return (a, b) => canonicalJson(a) === canonicalJson(b);
}
