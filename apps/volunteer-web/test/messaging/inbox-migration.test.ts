import { decodeImage, encodeImage, isSealed, sealMessage, type SealedMessage, type TaskMessage } from '@webpvm/vm-protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Inboxes, type DeliveredMessage, type InboxImage } from '../../src/host/messaging/inboxes.ts';
import { ReorderBuffer } from '../../src/host/messaging/reorder-buffer.ts';
import { settle } from '../support/timing.ts';

const TID = 'joba.9';
const EXIT_TAG = 99;

const msg = (from: string, seq: number, extra: Partial<TaskMessage> = {}): SealedMessage =>
  sealMessage({ from, to: TID, tag: 1, seq, data: `${from}:${seq}`, ...extra });
/** The exit notice of `from`, which sent `sent` messages before it ended: its next seq. */
const exit = (from: string, sent: number): SealedMessage => msg(from, sent + 1, { tag: EXIT_TAG, data: { tid: from, ok: true } });
/** A message, or one a lane brought that the inbox names by sender and seq only. */
type Keyed = Pick<SealedMessage, 'from' | 'seq'> & { tag?: number };
const keyOf = (m: Keyed) => (m.tag === EXIT_TAG ? `${m.from}:exit` : `${m.from}:${m.seq}`);
const keys = (messages: readonly Keyed[]) => messages.map(keyOf);

/**
 * An inbox holding TID whose worker is a model of the task's mailbox: it numbers what it is
 * handed from 1 and reports it back, as the worker does, and refuses deliveries until `start`.
 */
function page({ started = true, keepLog = true, reporting = true } = {}) {
  let running = started;
  /** The tids whose workers were asked to report now, once per ask. */
  const held: string[] = [];
  /** A restored worker starts with the image's mailbox, numbered before anything handed to it here. */
  let base = 0;
  const deliveries: { n: number; message: DeliveredMessage }[] = [];
  const counted: number[] = [];
  const inbox = new Inboxes({
    holds: (tid) => tid === TID,
    post: (tid, messages) => {
      expect(tid).toBe(TID);
      if (!running) return false;
      const numbered = messages.map((message, i) => ({ n: base + deliveries.length + i + 1, message: { ...message } }));
      deliveries.push(...numbered);
      if (reporting) inbox.reported(TID, numbered.map(({ n, message }) => ({ n, from: message.from, seq: message.seq })));
      return true;
    },
    delivered: (_tid, count) => counted.push(count),
    held: (tid) => held.push(tid),
    keepLog,
  });
  return {
    inbox,
    held,
    deliveries,
    counted,
    delivered: () => keys(deliveries.map((d) => d.message)),
    start: () => {
      running = true;
      inbox.started(TID);
    },
    restore: (image: InboxImage) => {
      base = image.mailbox.length;
      inbox.restore(TID, image);
    },
    accept: (...messages: SealedMessage[]) => {
      for (const m of messages) expect(inbox.accept(m)).toBe(true);
    },
  };
}

describe('Inboxes.checkpointed', () => {
  it('keeps what was posted after the checkpoint and what was unread at it, in delivery order', async () => {
    const p = page();
    // one delivery each, alternating senders: deliveries 1..6
    for (const [from, seq] of [['joba.1', 1], ['joba.2', 1], ['joba.1', 2], ['joba.2', 2], ['joba.1', 3], ['joba.2', 3]] as const) {
      p.accept(msg(from, seq));
      await settle();
    }
    expect(p.deliveries.map((d) => d.n)).toEqual([1, 2, 3, 4, 5, 6]);
    // the worker checkpointed after 4 deliveries with the 3rd and the 1st still unread (listed in any order)
    p.inbox.checkpointed(TID, 4, [3, 1]);
    expect(keys(p.inbox.cut(TID).mailbox)).toEqual(['joba.1:1', 'joba.1:2', 'joba.1:3', 'joba.2:3']);
  });

  it('forgets more with each later checkpoint, down to nothing once everything was read', async () => {
    const p = page();
    p.accept(msg('joba.1', 1), msg('joba.1', 2));
    await settle();
    p.accept(msg('joba.1', 3));
    await settle();
    p.inbox.checkpointed(TID, 1, []);
    p.inbox.checkpointed(TID, 2, [2]);
    p.inbox.checkpointed(TID, 3, []);
    expect(p.inbox.cut(TID).mailbox).toEqual([]);
  });

  it('keeps everything posted while no checkpoint was taken', async () => {
    const p = page();
    p.accept(msg('joba.1', 2), msg('joba.2', 1), msg('joba.1', 1));
    await settle();
    p.accept(exit('joba.2', 1));
    await settle();
    expect(keys(p.inbox.cut(TID).mailbox)).toEqual(['joba.2:1', 'joba.1:1', 'joba.1:2', 'joba.2:exit']);
  });
});

describe('Inboxes.cut', () => {
  it('takes the log and the ready messages as mailbox, what waits as pending, the delivered seqs, and closes the box', async () => {
    const p = page();
    p.accept(msg('joba.1', 1), msg('joba.1', 2));
    await settle();
    p.inbox.checkpointed(TID, 2, [2]);
    // ready but not handed over yet: the task leaves in the same turn
    p.accept(msg('joba.1', 3), msg('joba.2', 1));
    // waiting for a gap, or for its sender's messages
    p.accept(msg('joba.1', 5), msg('joba.2', 3), exit('joba.3', 2), exit('joba.2', 3));
    const image = p.inbox.cut(TID);
    expect(keys(image.mailbox)).toEqual(['joba.1:2', 'joba.1:3', 'joba.2:1']);
    expect(image.mailbox[1]).toEqual(msg('joba.1', 3));
    expect(keys(image.pending).sort()).toEqual(['joba.1:5', 'joba.2:3', 'joba.2:exit', 'joba.3:exit']);
    expect(image.pending.find((m) => m.from === 'joba.3')).toEqual(exit('joba.3', 2));
    expect(image.delivered).toEqual(new Map([['joba.1', 3], ['joba.2', 1]]));
    // closed: what was ready goes with the image, not to the worker, and acknowledgements start over
    await settle();
    expect(p.delivered()).toEqual(['joba.1:1', 'joba.1:2']);
    expect(p.inbox.postedFrom(TID, 'joba.1')).toBe(0);
    expect(p.inbox.cut(TID)).toEqual({ delivered: new Map(), mailbox: [], pending: [] });
  });

  it('takes the messages of a task whose worker never started as its mailbox', async () => {
    const p = page({ started: false });
    p.accept(msg('joba.1', 2), msg('joba.1', 1));
    await settle();
    expect(p.deliveries).toEqual([]);
    expect(keys(p.inbox.cut(TID).mailbox)).toEqual(['joba.1:1', 'joba.1:2']);
  });
});

describe('Inboxes.reported', () => {
  const fromLane = (n: number, seq: number) => ({ n, from: 'joba.1', seq, lane: true as const });
  const byPage = (n: number, seq: number) => ({ n, from: 'joba.1', seq });

  it('logs in the worker’s order what came on a lane, and hands over what waited for it', async () => {
    const p = page({ reporting: false });
    p.accept(msg('joba.1', 1));
    await settle();
    p.accept(msg('joba.1', 4));
    await settle();
    expect(p.delivered()).toEqual(['joba.1:1']);
    // 2 and 3 came on a lane, straight to the worker
    expect(keys(p.inbox.reported(TID, [byPage(1, 1), fromLane(2, 2), fromLane(3, 3)]))).toEqual(['joba.1:2', 'joba.1:3']);
    await settle();
    expect(p.delivered()).toEqual(['joba.1:1', 'joba.1:4']);
    expect(p.inbox.postedFrom(TID, 'joba.1')).toBe(4);
    const image = p.inbox.cut(TID);
    expect(keys(image.mailbox)).toEqual(['joba.1:1', 'joba.1:2', 'joba.1:3', 'joba.1:4']);
    expect(image.delivered).toEqual(new Map([['joba.1', 4]]));
  });

  it('drops what it handed over and the worker already had from a lane, and keeps the checkpoint’s numbering', async () => {
    const p = page({ reporting: false });
    p.accept(msg('joba.1', 1), msg('joba.1', 2));
    await settle();
    // the worker had 1 and 2 from a lane before the page's copies came: it reports those, not these
    p.inbox.reported(TID, [fromLane(1, 1), fromLane(2, 2)]);
    p.accept(msg('joba.1', 3));
    await settle();
    p.inbox.reported(TID, [byPage(3, 3)]);
    p.inbox.checkpointed(TID, 3, [2]);
    expect(keys(p.inbox.cut(TID).mailbox)).toEqual(['joba.1:2']);
  });

  it('drops what it handed over that the worker skipped, when it reports a later message of that sender, and keeps the others', async () => {
    const p = page({ reporting: false });
    p.accept(msg('joba.1', 1), msg('joba.2', 1), msg('joba.1', 2), msg('joba.1', 3));
    await settle();
    // the worker reports joba.1's 2 and never its 1: it had that one already
    p.inbox.reported(TID, [byPage(1, 2)]);
    expect(keys(p.inbox.cut(TID).mailbox)).toEqual(['joba.1:2', 'joba.2:1', 'joba.1:3']);
  });

  it('asks the worker to report now when a message waits behind a gap, once until it reports', async () => {
    const p = page({ reporting: false });
    p.accept(msg('joba.1', 1));
    await settle();
    expect(p.held).toEqual([]);
    // 2 went on a lane: 3 and 4 wait for it, and the worker is asked once
    p.accept(msg('joba.1', 3), msg('joba.1', 4), msg('joba.1', 4));
    expect(p.held).toEqual([TID]);
    p.inbox.reported(TID, [byPage(1, 1), fromLane(2, 2)]);
    await settle();
    expect(p.delivered()).toEqual(['joba.1:1', 'joba.1:3', 'joba.1:4']);
    // a duplicate does not wait: no ask; a later gap asks again
    p.accept(msg('joba.1', 2), msg('joba.1', 6));
    expect(p.held).toEqual([TID, TID]);
    // an exit notification waiting for a lane's messages asks too, after a report
    p.inbox.reported(TID, [byPage(3, 3)]);
    p.accept(exit('joba.2', 1));
    expect(p.held).toEqual([TID, TID, TID]);
  });
});

describe('Inboxes.restore', () => {
  const image = (): InboxImage => ({
    delivered: new Map([['joba.1', 3], ['joba.2', 1]]),
    mailbox: [msg('joba.1', 3), msg('joba.2', 1)],
    pending: [msg('joba.1', 5), msg('joba.2', 3), exit('joba.3', 1)],
  });

  it('goes on where the old inbox left off: duplicates are dropped, gaps filled in order', async () => {
    const p = page();
    p.restore(image());
    await settle();
    // the mailbox goes to the worker with its start, not through the inbox
    expect(p.deliveries).toEqual([]);
    expect(p.inbox.postedFrom(TID, 'joba.1')).toBe(3);
    p.accept(msg('joba.1', 1), msg('joba.1', 3), msg('joba.2', 1), msg('joba.2', 3));
    await settle();
    expect(p.deliveries).toEqual([]);
    p.accept(msg('joba.1', 4));
    p.accept(msg('joba.3', 1));
    p.accept(msg('joba.2', 2));
    await settle();
    expect(p.delivered()).toEqual(['joba.1:4', 'joba.1:5', 'joba.3:1', 'joba.3:exit', 'joba.2:2', 'joba.2:3']);
    expect(p.inbox.postedFrom(TID, 'joba.1')).toBe(5);
    p.accept(msg('joba.1', 5), msg('joba.1', 6));
    await settle();
    expect(p.delivered().slice(6)).toEqual(['joba.1:6']);
  });

  it('delivers at once the pending messages that no longer wait for anything', async () => {
    const p = page();
    p.restore({ delivered: new Map([['joba.1', 4]]), mailbox: [], pending: [msg('joba.1', 5), exit('joba.2', 0)] });
    await settle();
    expect(p.delivered()).toEqual(['joba.1:5', 'joba.2:exit']);
  });

  it('holds what it delivers until the restored worker starts', async () => {
    const p = page({ started: false });
    p.restore(image());
    p.accept(msg('joba.1', 4));
    await settle();
    expect(p.deliveries).toEqual([]);
    p.start();
    await settle();
    expect(p.delivered()).toEqual(['joba.1:4', 'joba.1:5']);
  });

  it('counts the restored mailbox as deliveries 1..k for the next checkpoint', async () => {
    const p = page();
    p.restore({ delivered: new Map([['joba.1', 3]]), mailbox: [msg('joba.1', 1), msg('joba.1', 2), msg('joba.1', 3)], pending: [] });
    for (const seq of [4, 5, 6]) {
      p.accept(msg('joba.1', seq));
      await settle();
    }
    expect(p.counted).toEqual([1, 1, 1]);
    // deliveries 4, 5 and 6 on this page; at the checkpoint the worker had the first 5, the 2nd unread
    p.inbox.checkpointed(TID, 5, [2]);
    expect(keys(p.inbox.cut(TID).mailbox)).toEqual(['joba.1:2', 'joba.1:6']);
  });

  it('gives back the same image when cut again before anything happened', () => {
    const p = page({ started: false });
    const original = image();
    p.restore(original);
    const again = p.inbox.cut(TID);
    expect(again.delivered).toEqual(original.delivered);
    expect(again.mailbox).toEqual(original.mailbox);
    expect(keys(again.pending).sort()).toEqual(keys(original.pending).sort());
  });
});

describe('ReorderBuffer across a migration', () => {
  it('starts from the delivered seqs it is given, and keeps its own copy of them', () => {
    const seed = new Map([['joba.1', 2]]);
    const buffer = new ReorderBuffer(seed);
    seed.set('joba.1', 10);
    expect(buffer.accept(msg('joba.1', 2))).toEqual([]);
    expect(keys(buffer.accept(msg('joba.1', 3)))).toEqual(['joba.1:3']);
    expect(keys(buffer.accept(msg('joba.2', 1)))).toEqual(['joba.2:1']);
    const delivered = buffer.delivered();
    expect(delivered).toEqual(new Map([['joba.1', 3], ['joba.2', 1]]));
    delivered.set('joba.1', 100);
    expect(buffer.deliveredFrom('joba.1')).toBe(3);
  });

  it('lists what waits for a gap, exit notices among it, and nothing it delivered', () => {
    const buffer = new ReorderBuffer();
    expect(buffer.waiting()).toEqual([]);
    buffer.accept(msg('joba.1', 3));
    buffer.accept(msg('joba.1', 2));
    buffer.accept(msg('joba.2', 2));
    buffer.accept(exit('joba.2', 2));
    buffer.accept(exit('joba.3', 0));
    expect(keys(buffer.waiting()).sort()).toEqual(['joba.1:2', 'joba.1:3', 'joba.2:2', 'joba.2:exit']);
    buffer.accept(msg('joba.1', 1));
    expect(keys(buffer.waiting()).sort()).toEqual(['joba.2:2', 'joba.2:exit']);
    buffer.accept(msg('joba.2', 1));
    expect(buffer.waiting()).toEqual([]);
  });

  it('a buffer seeded from another delivers, from the other\u2019s waiting messages and the rest, what the other would have (property)', () => {
    const run = fc
      .integer({ min: 1, max: 30 })
      .chain((n) =>
        fc.record({
          n: fc.constant(n),
          arrivals: fc.shuffledSubarray(
            Array.from({ length: n }, (_, i) => i + 1),
            { minLength: n, maxLength: n },
          ),
          at: fc.nat({ max: n }),
          dupes: fc.array(fc.integer({ min: 1, max: n }), { maxLength: 10 }),
        }),
      );
    fc.assert(
      fc.property(run, ({ n, arrivals, at, dupes }) => {
        const first = new ReorderBuffer();
        const before = arrivals.slice(0, at).flatMap((seq) => first.accept(msg('joba.1', seq)));
        const second = new ReorderBuffer(first.delivered());
        const after = [...first.waiting(), ...arrivals.slice(at).map((seq) => msg('joba.1', seq)), ...dupes.map((seq) => msg('joba.1', seq))].flatMap((m) =>
          second.accept(m),
        );
        expect([...before, ...after].map((m) => m.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      }),
    );
  });
});

describe('a task migrating from page to page (property)', () => {
  it('receives every message exactly once, in order per sender, across checkpoints, mailboxes and pages', async () => {
    await fc.assert(
      fc.asyncProperty(fc.gen(), async (g) => {
        const counts = g(fc.array, fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 3 });
        const senders = counts.map((_, i) => `joba.${i + 1}`);
        const data = senders.flatMap((from, i) => Array.from({ length: counts[i]! }, (_, k) => msg(from, k + 1)));
        // exit notifications come from the coordinator once each, after all their sender's messages
        const exits = senders.flatMap((from, i) => (g(fc.boolean) ? [exit(from, counts[i]!)] : []));
        const all = [...data, ...exits];
        if (all.length === 0) return;
        const arrivals = [...g(fc.shuffledSubarray, all, { minLength: all.length, maxLength: all.length })];
        /** Senders re-send what they had no acknowledgement for: duplicates, at any time. */
        const withResends = (list: SealedMessage[]) => {
          const out = [...list];
          if (data.length === 0) return out;
          for (const [m, at] of g(fc.array, fc.tuple(fc.constantFrom(...data), fc.nat()), { maxLength: 4 })) out.splice(at % (out.length + 1), 0, m);
          return out;
        };
        const hops = g(fc.integer, { min: 1, max: 3 });
        const cuts = [0, ...g(fc.array, fc.nat({ max: arrivals.length }), { minLength: hops, maxLength: hops }).sort((x, y) => x - y), arrivals.length];
        const steps: ('start' | 'flush' | 'read' | 'checkpoint')[] = ['start', 'flush', 'read', 'checkpoint'];

        /** What the task had read at its latest checkpoint, which its state carries from page to page. */
        let checkpointRead: DeliveredMessage[] = [];
        let image: InboxImage | null = null;
        for (let hop = 0; hop <= hops; hop++) {
          const p = page({ started: false });
          if (image) p.restore(image);
          // the worker resumes from the checkpoint, its mailbox numbered 1..k before anything else
          // no lanes here: the page handed over every message, so the image holds them all whole
          const mailbox = (image?.mailbox ?? []).filter(isSealed);
          expect(mailbox).toHaveLength(image?.mailbox.length ?? 0);
          const read = [...checkpointRead];
          const unread = mailbox.map((message, i) => ({ n: i + 1, message }));
          let received = mailbox.length;
          let seen = 0;
          const catchUp = () => {
            for (const d of p.deliveries.slice(seen)) unread.push({ n: ++received, message: d.message });
            seen = p.deliveries.length;
          };
          const segment = hop === 0 ? arrivals.slice(cuts[0], cuts[1]) : withResends(arrivals.slice(cuts[hop], cuts[hop + 1]));
          for (let i = 0; i <= segment.length; i++) {
            for (const step of g(fc.subarray, steps)) {
              if (step === 'start') p.start();
              if (step === 'flush') await settle();
              catchUp();
              if (step === 'read' && unread.length) read.push(unread.splice(g(fc.nat) % unread.length, 1)[0]!.message);
              if (step === 'checkpoint') {
                checkpointRead = [...read];
                p.inbox.checkpointed(TID, received, unread.map((u) => u.n));
              }
            }
            if (i < segment.length) p.accept(segment[i]!);
          }

          // what the task receives from its restart on: its mailbox, then this page's deliveries
          const resumed = [...mailbox, ...p.deliveries.map((d) => d.message)];
          for (const from of senders) {
            const order = resumed.filter((m) => m.from === from).map((m) => (m.seq === 0 ? Infinity : m.seq));
            expect(order, `order of ${from} on page ${hop}`).toEqual([...order].sort((x, y) => x - y));
          }
          if (hop === hops) {
            p.start();
            await settle();
            catchUp();
            const everything = [...read, ...unread.map((u) => u.message)];
            expect(keys(everything).sort()).toEqual(keys(all).sort());
            return;
          }

          // the image travels as bytes, as between hosts
          const decoded = decodeImage(encodeImage({ tid: TID, checkpoint: null, ...p.inbox.cut(TID), log: [] }));
          if (!decoded.ok) throw new Error(decoded.error.message);
          image = decoded.value;
          // its mailbox starts with what was handed over and the checkpoint does not cover, in delivery order
          const covered = new Set(keys(checkpointRead));
          const replay = keys(resumed).filter((k) => !covered.has(k));
          expect(keys(image.mailbox.slice(0, replay.length))).toEqual(replay);
        }
      }),
    );
  });
});

describe('Inboxes without a replay log (measuring what it costs)', () => {
  it('keeps nothing it handed over, so only unhanded messages go with a cut', async () => {
    const p = page({ keepLog: false });
    p.inbox.accept(msg('joba.1', 1));
    await settle();
    p.inbox.accept(msg('joba.1', 3));
    const cut = p.inbox.cut(TID);
    expect(cut.mailbox).toEqual([]);
    expect(keys(cut.pending)).toEqual(['joba.1:3']);
    expect(cut.delivered).toEqual(new Map([['joba.1', 1]]));
  });
});
