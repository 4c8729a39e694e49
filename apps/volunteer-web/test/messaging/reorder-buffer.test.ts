import { sealMessage, type SealedMessage, type TaskMessage } from '@webpvm/vm-protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReorderBuffer } from '../../src/host/messaging/reorder-buffer.ts';

const msg = (from: string, seq: number, extra: Partial<TaskMessage> = {}): SealedMessage => sealMessage({ from, to: 'joba.9', tag: 1, seq, data: seq, ...extra });
const seqs = (messages: SealedMessage[]) => messages.map((m) => `${m.from}:${m.seq}`);

describe('ReorderBuffer', () => {
  it('delivers messages that come in order at once', () => {
    const buffer = new ReorderBuffer();
    expect(seqs(buffer.accept(msg('joba.1', 1)))).toEqual(['joba.1:1']);
    expect(seqs(buffer.accept(msg('joba.1', 2)))).toEqual(['joba.1:2']);
    expect(buffer.deliveredFrom('joba.1')).toBe(2);
  });

  it('holds a message after a gap until the gap is filled, per sender', () => {
    const buffer = new ReorderBuffer();
    expect(buffer.accept(msg('joba.1', 3))).toEqual([]);
    expect(buffer.accept(msg('joba.1', 2))).toEqual([]);
    expect(seqs(buffer.accept(msg('joba.2', 1)))).toEqual(['joba.2:1']);
    expect(seqs(buffer.accept(msg('joba.1', 1)))).toEqual(['joba.1:1', 'joba.1:2', 'joba.1:3']);
  });

  it('tells a message that waits from one delivered or dropped', () => {
    const buffer = new ReorderBuffer();
    const first = msg('joba.1', 1);
    buffer.accept(first);
    expect(buffer.isWaiting(first)).toBe(false);
    const third = msg('joba.1', 3);
    buffer.accept(third);
    expect(buffer.isWaiting(third)).toBe(true);
    const again = msg('joba.1', 3);
    buffer.accept(again);
    expect(buffer.isWaiting(again)).toBe(false);
    buffer.accept(msg('joba.1', 2));
    expect(buffer.isWaiting(third)).toBe(false);
  });

  it('drops a message delivered already or waiting already', () => {
    const buffer = new ReorderBuffer();
    buffer.accept(msg('joba.1', 1));
    expect(buffer.accept(msg('joba.1', 1))).toEqual([]);
    buffer.accept(msg('joba.1', 3));
    expect(buffer.accept(msg('joba.1', 3))).toEqual([]);
    expect(seqs(buffer.accept(msg('joba.1', 2)))).toEqual(['joba.1:2', 'joba.1:3']);
  });

  it('holds an exit notice, its ended sender\'s next seq, until every message of its sender before it was delivered, and delivers it once', () => {
    const buffer = new ReorderBuffer();
    const exit = msg('joba.1', 3, { tag: 99, data: { tid: 'joba.1', ok: true } });
    expect(buffer.accept(exit)).toEqual([]);
    expect(seqs(buffer.accept(msg('joba.1', 1)))).toEqual(['joba.1:1']);
    expect(buffer.accept(msg('joba.1', 2))).toEqual([msg('joba.1', 2), exit]);
    expect(buffer.accept(exit)).toEqual([]);
  });

  it('delivers exactly 1..n in order from any arrival order with duplicates (property)', () => {
    const arrivals = fc
      .integer({ min: 1, max: 60 })
      .chain((n) =>
        fc.tuple(
          fc.constant(n),
          fc.shuffledSubarray(Array.from({ length: n }, (_, i) => i + 1), { minLength: n, maxLength: n }),
          fc.array(fc.integer({ min: 1, max: n }), { maxLength: 30 }),
          fc.array(fc.nat(), { maxLength: 30 }),
        ),
      )
      .map(([n, order, dupes, positions]) => {
        const list = [...order];
        dupes.forEach((seq, i) => list.splice((positions[i] ?? 0) % (list.length + 1), 0, seq));
        return { n, list };
      });
    fc.assert(
      fc.property(arrivals, ({ n, list }) => {
        const buffer = new ReorderBuffer();
        const delivered = list.flatMap((seq) => buffer.accept(msg('joba.1', seq))).map((m) => m.seq);
        expect(delivered).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      }),
    );
  });

  it('advances past what a lane brought, dropping those it held, releasing what follows and the exit notification after it', () => {
    const buffer = new ReorderBuffer();
    expect(buffer.accept(msg('joba.1', 3))).toEqual([]);
    expect(buffer.accept(msg('joba.1', 5))).toEqual([]);
    expect(buffer.accept(msg('joba.1', 6, { tag: 99 }))).toEqual([]);
    // 1 to 3 came on a lane: the 3 held here is a copy
    expect(buffer.advance('joba.1', 3)).toEqual([]);
    expect(buffer.waiting().map((m) => m.seq)).toEqual([5, 6]);
    expect(buffer.advance('joba.1', 4)).toEqual([msg('joba.1', 5), msg('joba.1', 6, { tag: 99 })]);
    expect(buffer.advance('joba.1', 4)).toEqual([]);
    expect(buffer.accept(msg('joba.1', 5))).toEqual([]);
    expect(buffer.waiting()).toEqual([]);
    expect(buffer.deliveredFrom('joba.1')).toBe(6);
  });
});
