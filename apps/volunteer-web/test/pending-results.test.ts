import type { TaskOutcome } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { batchOutcomes } from '../src/host/pending-results.ts';

const outcome = (n: number, value: unknown = n): TaskOutcome => ({ tid: `joba.${n}`, attempt: 1, ok: true, value });

describe('batchOutcomes', () => {
  it('keeps to the item limit', () => {
    const batches = batchOutcomes(Array.from({ length: 5 }, (_, i) => outcome(i)), 2);
    expect(batches.map((b) => b.map((o) => o.tid))).toEqual([['joba.0', 'joba.1'], ['joba.2', 'joba.3'], ['joba.4']]);
  });

  it('keeps to the frame size, and sends an item bigger than the budget alone', () => {
    const big = 'x'.repeat(100);
    const batches = batchOutcomes([outcome(0, big), outcome(1, big), outcome(2, 'x'.repeat(500)), outcome(3)], 100, 300);
    expect(batches.map((b) => b.map((o) => o.tid))).toEqual([['joba.0', 'joba.1'], ['joba.2'], ['joba.3']]);
  });
});
