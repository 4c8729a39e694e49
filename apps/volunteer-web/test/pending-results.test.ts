import type { HostMessage, TaskOutcome } from '@webpvm/vm-protocol';
import { describe, expect, it, vi } from 'vitest';
import { PendingResults, batchOutcomes } from '../src/host/pending-results.ts';
import { memoryStore } from './support/memory-store.ts';
import { settle } from './support/timing.ts';

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

describe('PendingResults', () => {
  function setup(initial: Record<string, unknown> = {}) {
    const store = memoryStore(initial);
    const sent: HostMessage[] = [];
    const pending = new PendingResults(store, (message) => {
      sent.push(message);
      return true;
    });
    const records = () => [...store.data].filter(([key]) => key.startsWith('result')).map(([, value]) => value);
    const sentTids = () => sent.flatMap((m) => (m.type === 'results' ? m.items.map((o) => o.tid) : []));
    return { store, sent, pending, records, sentTids };
  }

  it('writes the outcomes of one turn as one record, with no timer, and those that end during the write as the next', async () => {
    const t = setup();
    let finish = () => {};
    const write = t.store.write;
    t.store.write = (puts, dels) => new Promise<void>((resolve) => (finish = () => void write(puts, dels).then(resolve)));
    t.pending.add(outcome(0));
    t.pending.add(outcome(1));
    await settle();
    expect(t.sent).toEqual([]);
    t.pending.add(outcome(2));
    t.pending.add(outcome(3));
    finish();
    await settle();
    expect(t.records()).toEqual([[outcome(0), outcome(1)]]);
    expect(t.sentTids()).toEqual(['joba.0', 'joba.1']);
    finish();
    await settle();
    expect(t.records()).toEqual([[outcome(0), outcome(1)], [outcome(2), outcome(3)]]);
    expect(t.sentTids()).toEqual(['joba.0', 'joba.1', 'joba.2', 'joba.3']);
    expect(t.pending.count).toBe(4);
  });

  it('deletes a record once all its outcomes are acknowledged, in the transaction of the next write', async () => {
    const t = setup();
    const writes: [number, string[]][] = [];
    const write = t.store.write;
    t.store.write = (puts, dels) => {
      writes.push([puts.length, dels]);
      return write(puts, dels);
    };
    t.pending.add(outcome(0));
    t.pending.add(outcome(1));
    await settle();
    t.pending.ack([{ tid: 'joba.0', attempt: 1 }]);
    expect(t.pending.count).toBe(1);
    t.pending.ack([{ tid: 'joba.1', attempt: 1 }]);
    expect(t.pending.count).toBe(0);
    const [first] = t.records();
    expect(first).toEqual([outcome(0), outcome(1)]);
    t.pending.add(outcome(2));
    await settle();
    expect(t.records()).toEqual([[outcome(2)]]);
    expect(writes).toEqual([
      [1, []],
      [1, [expect.stringMatching(/^results:/)]],
    ]);
  });

  it('deletes acknowledged records within a second when no write comes', async () => {
    vi.useFakeTimers();
    try {
      const t = setup();
      t.pending.add(outcome(0));
      await vi.advanceTimersByTimeAsync(0);
      t.pending.ack([{ tid: 'joba.0', attempt: 1 }]);
      await vi.advanceTimersByTimeAsync(999);
      expect(t.records()).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(t.records()).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps no record of what was acknowledged while it was written (sent at once as the page left)', async () => {
    const t = setup();
    let finish = () => {};
    const write = t.store.write;
    t.store.write = (puts, dels) => new Promise<void>((resolve) => (finish = () => void write(puts, dels).then(resolve)));
    t.pending.add(outcome(0));
    await settle();
    t.pending.sendNow();
    expect(t.sentTids()).toEqual(['joba.0']);
    t.pending.ack([{ tid: 'joba.0', attempt: 1 }]);
    finish();
    await settle();
    expect(t.pending.count).toBe(0);
    // its record is deleted with the next write
    t.pending.add(outcome(1));
    await settle();
    finish();
    await settle();
    expect(t.records()).toEqual([[outcome(1)]]);
  });

  it('loads what an earlier visit left, in batch records and in the one-outcome records written before them, and sends it again', async () => {
    const t = setup({ 'results:old:0': [outcome(0), outcome(1)], 'result:joba.5:1': outcome(5), 'ckpt:joba.9': {} });
    await t.pending.load();
    expect(t.pending.count).toBe(3);
    expect(t.pending.tids()).toEqual(new Set(['joba.0', 'joba.1', 'joba.5']));
    t.pending.resendAll();
    expect(t.sentTids().sort()).toEqual(['joba.0', 'joba.1', 'joba.5']);
    t.pending.ack([{ tid: 'joba.5', attempt: 1 }, { tid: 'joba.0', attempt: 1 }]);
    t.pending.add(outcome(7));
    await settle();
    expect([...t.store.data.keys()].filter((key) => !key.startsWith('results:') || key === 'results:old:0').sort()).toEqual(['ckpt:joba.9', 'results:old:0']);
  });
});
