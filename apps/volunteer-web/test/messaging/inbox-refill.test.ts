import { decodeImage, encodeImage, isSealed, sealMessage, type MailboxEntry, type SealedMessage } from '@webpvm/vm-protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Inboxes } from '../../src/host/messaging/inboxes.ts';
import { settle } from '../support/timing.ts';

const TID = 'joba.9';

const msg = (from: string, seq: number): SealedMessage => sealMessage({ from, to: TID, tag: 1, seq, data: `${from}:${seq}` });
const keyOf = (m: MailboxEntry) => `${m.from}:${m.seq}${isSealed(m) ? '' : ' named'}`;

/** An inbox holding TID, whose worker takes what it is handed and reports nothing back by itself. */
function inbox() {
  const handed: SealedMessage[] = [];
  const filled: string[] = [];
  const boxes = new Inboxes({
    holds: (tid) => tid === TID,
    post: (_tid, messages) => {
      handed.push(...messages);
      return true;
    },
    delivered: () => {},
    filled: (tid) => filled.push(tid),
  });
  return { boxes, handed, filled };
}

describe('Inboxes, a lane’s messages named by sender and seq', () => {
  it('logs a lane’s message by sender and seq, and a cut names it so in delivery order', async () => {
    const { boxes, handed } = inbox();
    boxes.accept(msg('joba.1', 1));
    await settle();
    const lanes = boxes.reported(TID, [
      { n: 1, from: 'joba.1', seq: 1 },
      { n: 2, from: 'joba.2', seq: 1, lane: true },
      { n: 3, from: 'joba.2', seq: 2, lane: true },
    ]);
    expect(handed.map(keyOf)).toEqual(['joba.1:1']);
    expect(lanes).toEqual([
      { from: 'joba.2', to: TID, seq: 1 },
      { from: 'joba.2', to: TID, seq: 2 },
    ]);
    const cut = boxes.cut(TID);
    expect(cut.mailbox.map(keyOf)).toEqual(['joba.1:1', 'joba.2:1 named', 'joba.2:2 named']);
    expect(cut.delivered).toEqual(new Map([['joba.1', 1], ['joba.2', 2]]));
  });

  it('keeps whole what a checkpoint finds unread, from the envelopes the worker hands over, and only a matching one', async () => {
    const { boxes } = inbox();
    boxes.reported(TID, [
      { n: 1, from: 'joba.2', seq: 1, lane: true },
      { n: 2, from: 'joba.2', seq: 2, lane: true },
      { n: 3, from: 'joba.3', seq: 1, lane: true },
    ]);
    // 1 was read; 2 and 3 were not: the worker hands over 2's envelope, and for 3 another message's
    boxes.checkpointed(TID, 3, [2, 3], [
      { n: 2, envelope: msg('joba.2', 2).envelope },
      { n: 3, envelope: msg('joba.3', 2).envelope },
    ]);
    const { mailbox } = boxes.cut(TID);
    expect(mailbox.map(keyOf)).toEqual(['joba.2:2', 'joba.3:1 named']);
    expect(mailbox[0]).toEqual(msg('joba.2', 2));
    expect(boxes.unread(TID, 3)).toEqual([]);
  });

  it('restored from an image that names messages, takes them as their senders send them again, and says when it has all', async () => {
    const { boxes, handed, filled } = inbox();
    const image = { delivered: new Map([['joba.1', 3], ['joba.2', 1]]), mailbox: [{ from: 'joba.1', seq: 2 }, msg('joba.2', 1), { from: 'joba.1', seq: 3 }], pending: [msg('joba.1', 5)] };
    boxes.restore(TID, image);
    expect(boxes.mailbox(TID)).toBeNull();
    // the sender sends again all its log holds after 1: 2 and 3 fill their places, 4 is new and lets 5 go
    for (const seq of [3, 4, 2]) expect(boxes.accept(msg('joba.1', seq))).toBe(true);
    // a copy of one it has whole is dropped
    boxes.accept(msg('joba.2', 1));
    await settle();
    expect(filled).toEqual([TID]);
    expect(boxes.mailbox(TID)).toEqual([msg('joba.1', 2), msg('joba.2', 1), msg('joba.1', 3)]);
    expect(handed.map(keyOf)).toEqual(['joba.1:4', 'joba.1:5']);
  });

  it('fills names from messages that came before its image did', async () => {
    const { boxes, filled } = inbox();
    boxes.accept(msg('joba.1', 1));
    boxes.restore(TID, { delivered: new Map([['joba.1', 1]]), mailbox: [{ from: 'joba.1', seq: 1 }], pending: [] });
    await settle();
    expect(filled).toEqual([TID]);
    expect(boxes.mailbox(TID)).toEqual([msg('joba.1', 1)]);
  });

  it('a task moved with named messages receives the same messages in the same order once its senders send again (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.gen(), async (g) => {
        const counts = g(fc.array, fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 });
        const senders = counts.map((_, i) => `joba.${i + 1}`);
        // the worker's order of deliveries: per sender in seq order, senders interleaved at random;
        // a sender's messages come on its lane, or through the page
        const onLane = senders.map(() => g(fc.boolean));
        const next = senders.map(() => 1);
        const order: { from: string; seq: number; lane: boolean }[] = [];
        while (next.some((seq, i) => seq <= counts[i]!)) {
          const open = senders.map((_, i) => i).filter((i) => next[i]! <= counts[i]!);
          const i = open[g(fc.nat) % open.length]!;
          order.push({ from: senders[i]!, seq: next[i]!++, lane: onLane[i]! });
        }
        const { boxes } = inbox();
        // what came through the page was handed over first; the reports say where each stands
        for (const d of order) if (!d.lane) boxes.accept(msg(d.from, d.seq));
        await settle();
        const read = g(fc.nat, { max: order.length });
        const unreadLane = order.flatMap((d, i) => (i >= read && d.lane ? [{ n: i + 1, envelope: msg(d.from, d.seq).envelope }] : []));
        boxes.reported(TID, order.map((d, i) => ({ n: i + 1, from: d.from, seq: d.seq, ...(d.lane ? { lane: true as const } : {}) })));
        const checkpointed = g(fc.boolean);
        if (checkpointed) boxes.checkpointed(TID, order.length, order.map((_, i) => i + 1).slice(read), unreadLane);
        const replay = checkpointed ? order.slice(read) : order;

        const decoded = decodeImage(encodeImage({ tid: TID, checkpoint: null, ...boxes.cut(TID), log: [] }));
        if (!decoded.ok) throw new Error(decoded.error.message);
        const moved = inbox();
        moved.boxes.restore(TID, decoded.value);
        // each sender sends again everything its log holds, in seq order, with duplicates, senders interleaved
        const resent = senders.flatMap((from, i) => Array.from({ length: counts[i]! }, (_, k) => msg(from, k + 1)));
        for (const m of g(fc.shuffledSubarray, [...resent, ...resent], { minLength: resent.length * 2, maxLength: resent.length * 2 })) moved.boxes.accept(m);
        await settle();
        const mailbox = moved.boxes.mailbox(TID);
        expect(mailbox?.map((m) => `${m.from}:${m.seq}`)).toEqual(replay.map((d) => `${d.from}:${d.seq}`));
        // a checkpoint's unread lane messages went whole: only a cut without one names any
        expect(decoded.value.mailbox.some((m) => !isSealed(m))).toBe(!checkpointed && order.some((d) => d.lane));
        expect(moved.filled).toEqual(decoded.value.mailbox.some((m) => !isSealed(m)) ? [TID] : []);
        expect(moved.handed).toEqual([]);
      }),
    );
  });
});
