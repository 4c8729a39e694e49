import { sealMessage, type SealedMessage } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UnackedCopies } from '../../src/host/messaging/unacked-copies.ts';
import { describeEnvelope } from '../support/envelopes.ts';
import { FakeLink } from '../support/fake-links.ts';

const msg = (from: string, to: string, seq: number): SealedMessage => sealMessage({ from, to, tag: 1, seq, data: seq });
const ack = (of: string, by: string, seq: number) => ({ type: 'ack' as const, of, by, seq });

function setup() {
  const relayed: Uint8Array[] = [];
  const copies = new UnackedCopies((bytes) => relayed.push(bytes));
  const keep = (link: FakeLink, m: SealedMessage) => copies.keep(link, m, m.envelope);
  return { copies, keep, relayed: () => relayed.map(describeEnvelope) };
}

afterEach(() => vi.useRealTimers());

describe('UnackedCopies', () => {
  it('drops the copies an acknowledgement covers, on every link, and keeps the rest', () => {
    const t = setup();
    const a = new FakeLink('peer-a');
    const b = new FakeLink('peer-b');
    for (const seq of [1, 2, 3]) t.keep(a, msg('joba.1', 'joba.2', seq));
    t.keep(b, msg('joba.1', 'joba.2', 4));
    t.copies.acked(ack('joba.1', 'joba.2', 2), true);
    expect(t.copies.linkBroken(a)).toBe(1);
    expect(t.relayed()).toEqual(['joba.1>joba.2:3']);
    t.copies.acked(ack('joba.1', 'joba.2', 4), true);
    expect(t.copies.linkBroken(b)).toBe(0);
  });

  it('relays what a broken link carried, in order per pair, and forgets it', () => {
    const t = setup();
    const a = new FakeLink('peer-a');
    t.keep(a, msg('joba.1', 'joba.2', 1));
    t.keep(a, msg('joba.5', 'joba.2', 1));
    t.keep(a, msg('joba.1', 'joba.2', 2));
    expect(t.copies.linkBroken(a)).toBe(3);
    expect(t.relayed()).toEqual(['joba.1>joba.2:1', 'joba.1>joba.2:2', 'joba.5>joba.2:1']);
    expect(t.copies.linkBroken(a)).toBe(0);
  });

  it('on a bounce relays what went to that receiver over that link only, and marks the pair', () => {
    const t = setup();
    const a = new FakeLink('peer-a');
    const b = new FakeLink('peer-b');
    t.keep(a, msg('joba.1', 'joba.2', 1));
    t.keep(a, msg('joba.1', 'joba.3', 1));
    t.keep(b, msg('joba.1', 'joba.2', 2));
    t.copies.bounced(a, ack('joba.1', 'joba.2', 1));
    expect(t.relayed()).toEqual(['joba.1>joba.2:1']);
    expect(t.copies.wasBounced(msg('joba.1', 'joba.2', 1))).toBe(true);
    expect(t.copies.wasBounced(msg('joba.1', 'joba.2', 2))).toBe(false);
    expect(t.copies.linkBroken(b)).toBe(1);
  });

  it('remembers acknowledgements for lane copies only when their sender is here', () => {
    const t = setup();
    t.copies.acked(ack('joba.1', 'joba.2', 3), false);
    expect(t.copies.isAcknowledged(msg('joba.1', 'joba.2', 1))).toBe(false);
    t.copies.acked(ack('joba.1', 'joba.2', 3), true);
    t.copies.acked(ack('joba.1', 'joba.2', 2), true);
    expect(t.copies.isAcknowledged(msg('joba.1', 'joba.2', 3))).toBe(true);
    expect(t.copies.isAcknowledged(msg('joba.1', 'joba.2', 4))).toBe(false);
  });

  it('relays what a closed lane carried 60 ms later, unless acknowledged by then', () => {
    vi.useFakeTimers();
    const t = setup();
    const a = new FakeLink('peer-a');
    for (const seq of [1, 2, 3]) t.keep(a, msg('joba.1', 'joba.2', seq));
    t.keep(a, msg('joba.1', 'joba.4', 1));
    t.copies.laneClosed({ from: 'joba.1', to: 'joba.2' });
    vi.advanceTimersByTime(59);
    t.copies.acked(ack('joba.1', 'joba.2', 1), true);
    expect(t.relayed()).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(t.relayed()).toEqual(['joba.1>joba.2:2', 'joba.1>joba.2:3']);
  });

  it('relays what a sender that left wrote on lanes a second later, and forgets its marks at once', () => {
    vi.useFakeTimers();
    const t = setup();
    const a = new FakeLink('peer-a');
    const written = msg('joba.1', 'joba.2', 1);
    t.copies.wroteOnLane(written);
    t.keep(a, written);
    t.keep(a, msg('joba.1', 'joba.3', 1));
    t.copies.acked(ack('joba.1', 'joba.6', 1), true);
    t.copies.bounced(new FakeLink('peer-c'), ack('joba.1', 'joba.5', 1));
    t.copies.senderLeft('joba.1');
    expect(t.copies.isAcknowledged(msg('joba.1', 'joba.6', 1))).toBe(false);
    expect(t.copies.wasBounced(msg('joba.1', 'joba.5', 1))).toBe(false);
    vi.advanceTimersByTime(999);
    expect(t.relayed()).toEqual([]);
    vi.advanceTimersByTime(1);
    // only the pair it wrote on a lane: what it sent over the page channel waits for its acknowledgement
    expect(t.relayed()).toEqual(['joba.1>joba.2:1']);
  });

  it('relays every copy when the page goes, keeping them, and cancels what was settling when stopped', () => {
    vi.useFakeTimers();
    const t = setup();
    const a = new FakeLink('peer-a');
    t.keep(a, msg('joba.1', 'joba.2', 1));
    t.keep(new FakeLink('peer-b'), msg('joba.1', 'joba.3', 1));
    t.copies.departing();
    expect(t.relayed()).toEqual(['joba.1>joba.2:1', 'joba.1>joba.3:1']);
    t.copies.laneClosed({ from: 'joba.1', to: 'joba.2' });
    t.copies.stop();
    vi.advanceTimersByTime(1000);
    expect(t.relayed()).toHaveLength(2);
    expect(t.copies.linkBroken(a)).toBe(1);
  });
});
