import { MAX_HANDED } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { BatchDepth } from '../src/host/batch-depth.ts';

describe('BatchDepth', () => {
  it('hands one task of a job until its tasks were timed, then about half a second of them, within MAX_HANDED', () => {
    const depth = new BatchDepth();
    expect(depth.of('joba')).toBe(1);
    depth.measured('joba', 100, 1);
    expect(depth.of('joba')).toBe(5);
    depth.measured('jobb', 1, 1000);
    expect(depth.of('jobb')).toBe(MAX_HANDED);
    depth.measured('jobc', 2_000, 1);
    expect(depth.of('jobc')).toBe(1);
  });

  it('moves a job’s mean a fifth of the way to each new measure', () => {
    const depth = new BatchDepth();
    depth.measured('joba', 100, 1);
    depth.measured('joba', 600, 1);
    // 100 + 0.2 × 500 = 200 ms a task
    expect(depth.of('joba')).toBe(2);
  });
});
