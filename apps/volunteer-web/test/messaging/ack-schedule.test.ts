import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AckSchedule, sendBounce } from '../../src/host/messaging/ack-schedule.ts';
import { FrameKind } from '../../src/host/messaging/channel-frames.ts';
import { describeHeader } from '../support/envelopes.ts';
import { FakeLink } from '../support/fake-links.ts';
import { settle } from '../support/timing.ts';

/** An inbox whose receivers have been handed `posted[by][of]` messages; `gone` ones no longer live here. */
function setup() {
  const posted = new Map<string, number>();
  const gone = new Set<string>();
  const acks = new AckSchedule({
    holds: (tid) => !gone.has(tid),
    postedFrom: (by, of) => posted.get(`${of}>${by}`) ?? 0,
  });
  const link = new FakeLink('peer-a');
  const sent = () => link.sent.map((s) => `${s.kind === FrameKind.bounce ? 'bounce' : 'envelope'} ${describeHeader(s.header)}`);
  return { acks, link, sent, post: (of: string, by: string, seq: number) => posted.set(`${of}>${by}`, seq), gone };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('AckSchedule', () => {
  it('acknowledges per pair what was handed over, 20 ms after the first message, once', async () => {
    const t = setup();
    t.acks.later(t.link, 'joba.1', 'joba.2', 1);
    t.acks.later(t.link, 'joba.1', 'joba.2', 2);
    t.acks.later(t.link, 'joba.3', 'joba.2', 1);
    t.post('joba.1', 'joba.2', 2);
    t.post('joba.3', 'joba.2', 1);
    await vi.advanceTimersByTimeAsync(19);
    expect(t.sent()).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.sent()).toEqual(['envelope ack joba.1>joba.2:2', 'envelope ack joba.3>joba.2:1']);
    await vi.advanceTimersByTimeAsync(100);
    expect(t.sent()).toHaveLength(2);
  });

  it('keeps a pair due, every 20 ms, until what it received is handed over', async () => {
    const t = setup();
    t.acks.later(t.link, 'joba.1', 'joba.2', 3);
    t.post('joba.1', 'joba.2', 1);
    await vi.advanceTimersByTimeAsync(20);
    expect(t.sent()).toEqual(['envelope ack joba.1>joba.2:1']);
    await vi.advanceTimersByTimeAsync(20);
    expect(t.sent()).toHaveLength(1);
    t.post('joba.1', 'joba.2', 3);
    await vi.advanceTimersByTimeAsync(20);
    expect(t.sent()).toEqual(['envelope ack joba.1>joba.2:1', 'envelope ack joba.1>joba.2:3']);
    await vi.advanceTimersByTimeAsync(100);
    expect(t.sent()).toHaveLength(2);
  });

  it('acknowledges after the current turn once 64 messages came, without waiting for the timer', async () => {
    const t = setup();
    for (let seq = 1; seq <= 63; seq++) t.acks.later(t.link, 'joba.1', 'joba.2', seq);
    t.post('joba.1', 'joba.2', 64);
    await settle();
    expect(t.sent()).toEqual([]);
    t.acks.later(t.link, 'joba.1', 'joba.2', 64);
    expect(t.sent()).toEqual([]);
    await settle();
    expect(t.sent()).toEqual(['envelope ack joba.1>joba.2:64']);
  });

  it('bounces what a receiver that left had not been handed, after acknowledging what it had', async () => {
    const t = setup();
    t.acks.later(t.link, 'joba.1', 'joba.2', 4);
    t.post('joba.1', 'joba.2', 2);
    t.gone.add('joba.2');
    t.acks.flush();
    expect(t.sent()).toEqual(['envelope ack joba.1>joba.2:2', 'bounce ack joba.1>joba.2:4']);
    await vi.advanceTimersByTimeAsync(100);
    expect(t.sent()).toHaveLength(2);
  });

  it('owes nothing on a link that broke, and stops its timer when stopped', async () => {
    const t = setup();
    const other = new FakeLink('peer-b');
    t.acks.later(t.link, 'joba.1', 'joba.2', 1);
    t.acks.later(other, 'joba.5', 'joba.2', 1);
    t.post('joba.1', 'joba.2', 1);
    t.post('joba.5', 'joba.2', 1);
    t.acks.linkBroken(t.link);
    await vi.advanceTimersByTimeAsync(20);
    expect(t.sent()).toEqual([]);
    expect(other.sent.map((s) => describeHeader(s.header))).toEqual(['ack joba.5>joba.2:1']);

    t.acks.later(other, 'joba.5', 'joba.2', 2);
    t.post('joba.5', 'joba.2', 2);
    t.acks.stop();
    await vi.advanceTimersByTimeAsync(100);
    expect(other.sent).toHaveLength(1);
  });

  it('sends a bounce as an ack header in a bounce frame', () => {
    const link = new FakeLink('peer-a');
    sendBounce(link, 'joba.1', 'joba.2', 7);
    expect(link.sent).toEqual([{ kind: FrameKind.bounce, header: { type: 'ack', of: 'joba.1', by: 'joba.2', seq: 7 } }]);
  });
});
