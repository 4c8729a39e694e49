import { LIMITS, type TaskOutcome } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { OutboxFrame } from '../src/host/coordinator-outbox.ts';
import { FrameKind } from '../src/host/messaging/channel-frames.ts';
import { OutgoingImages, type CutImage } from '../src/host/outgoing-images.ts';
import { describeEnvelope, headerOf } from './support/envelopes.ts';
import { FakeLinks } from './support/fake-links.ts';

const image = new Uint8Array(LIMITS.imagePartBytes + 1).fill(7);
const cut = (tid = 'joba.0'): CutImage => ({ tid, attempt: 1, image, frozen: true, obtrusivenessMs: 3 });
/** What goes to the coordinator for the image of `tid` that goes through it (see `toCoordinator`). */
const throughCoordinator = (tid: string) => [`part ${tid}@1 1/2`, `part ${tid}@1 2/2`, `migrated ${tid} via coordinator`];

function setup({ mayWait = true } = {}) {
  const frames: OutboxFrame[] = [];
  const failed: TaskOutcome[] = [];
  const links = new FakeLinks();
  const outgoing = new OutgoingImages({ send: (frame) => frames.push(frame), channel: (peerId) => links.open(peerId), mayWait: () => mayWait, fail: (o) => failed.push(o) });
  /** What went to the coordinator: parts by `part tid@attempt`, messages by type and path. */
  const toCoordinator = () =>
    frames.map((f) => {
      if (!(f instanceof Uint8Array)) return f.type === 'migrated' ? `migrated ${f.tid} via ${f.via}` : f.type;
      const h = headerOf(f);
      return h.type === 'part' ? `part ${h.tid}@${h.attempt} ${h.index + 1}/${h.count}` : describeEnvelope(f);
    });
  return { outgoing, frames, failed, links, toCoordinator };
}

afterEach(() => vi.useRealTimers());

describe('OutgoingImages', () => {
  it('sends an image straight to its named destination over an open channel, as the next attempt, then says so', () => {
    const t = setup();
    const link = t.links.opened('h2-peer');
    t.outgoing.destination({ type: 'destination', tid: 'joba.0', attempt: 2, peerId: 'h2-peer' });
    expect(t.outgoing.ship(cut(), t.outgoing.takeDestination('joba.0'))).toBe(true);
    expect(link.sent.map((s) => [s.kind, s.header.type === 'part' && `${s.header.tid}@${s.header.attempt} ${s.header.index + 1}/${s.header.count}`])).toEqual([
      [FrameKind.envelope, 'joba.0@2 1/2'],
      [FrameKind.envelope, 'joba.0@2 2/2'],
    ]);
    expect(t.frames).toEqual([{ type: 'migrated', tid: 'joba.0', attempt: 1, imageBytes: image.byteLength, frozen: true, obtrusivenessMs: 3, via: 'channel' }]);
  });

  it('keeps an image it sent over a channel for 20 s, to send it again through the coordinator when asked', () => {
    vi.useFakeTimers();
    const t = setup();
    t.links.opened('h2-peer');
    t.outgoing.ship(cut(), { attempt: 2, peerId: 'h2-peer' });
    t.outgoing.sendAgain({ type: 'send-image', tid: 'joba.0', attempt: 3 });
    expect(t.toCoordinator()).toEqual(['migrated joba.0 via channel', 'part joba.0@3 1/2', 'part joba.0@3 2/2']);
    vi.advanceTimersByTime(20_000);
    t.outgoing.sendAgain({ type: 'send-image', tid: 'joba.0', attempt: 4 });
    expect(t.toCoordinator()).toHaveLength(3);
  });

  it('sends through the coordinator, as its own attempt, when the destination has no open channel or is not the next attempt', () => {
    const t = setup();
    t.links.opened('h3-peer');
    t.outgoing.ship(cut('joba.0'), { attempt: 2, peerId: 'h2-peer' });
    t.outgoing.ship(cut('joba.1'), { attempt: 3, peerId: 'h3-peer' });
    t.outgoing.ship(cut('joba.2'), { attempt: 2, peerId: null });
    expect(t.toCoordinator()).toEqual([...throughCoordinator('joba.0'), ...throughCoordinator('joba.1'), ...throughCoordinator('joba.2')]);
  });

  it('holds an image cut before its destination is named for 250 ms, then sends it through the coordinator', () => {
    vi.useFakeTimers();
    const t = setup();
    const link = t.links.opened('h2-peer');
    t.outgoing.ship(cut('joba.0'), t.outgoing.takeDestination('joba.0'));
    t.outgoing.ship(cut('joba.1'), null);
    vi.advanceTimersByTime(249);
    expect(t.frames).toEqual([]);
    t.outgoing.destination({ type: 'destination', tid: 'joba.0', attempt: 2, peerId: 'h2-peer' });
    expect(t.toCoordinator()).toEqual(['migrated joba.0 via channel']);
    expect(link.sent).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(t.toCoordinator()).toEqual(['migrated joba.0 via channel', ...throughCoordinator('joba.1')]);
  });

  it('waits for no destination when none could be used in time', () => {
    const t = setup({ mayWait: false });
    t.outgoing.ship(cut(), null);
    expect(t.toCoordinator()).toEqual(throughCoordinator('joba.0'));
  });

  it('when the page goes, sends what waits at once and everything through the coordinator, even with a channel open', () => {
    vi.useFakeTimers();
    const t = setup();
    t.links.opened('h2-peer');
    t.outgoing.ship(cut('joba.0'), null);
    t.outgoing.departing();
    t.outgoing.ship(cut('joba.1'), { attempt: 2, peerId: 'h2-peer' });
    expect(t.toCoordinator()).toEqual([...throughCoordinator('joba.0'), ...throughCoordinator('joba.1')]);
    vi.advanceTimersByTime(1_000);
    expect(t.frames).toHaveLength(6);
  });

  it('fails a task whose image is too large to move, and sends nothing', () => {
    const t = setup();
    const huge = { byteLength: LIMITS.imageBytes + 1 } as Uint8Array;
    expect(t.outgoing.ship({ ...cut(), image: huge }, null)).toBe(false);
    expect(t.frames).toEqual([]);
    expect(t.failed).toEqual([{ tid: 'joba.0', attempt: 1, ok: false, error: { code: 'E_TOO_LARGE', message: `its image is ${LIMITS.imageBytes + 1} bytes, over ${LIMITS.imageBytes}` } }]);
  });

  it('hands a named destination over once, and forgets one named for a task that ended', () => {
    const t = setup();
    t.outgoing.destination({ type: 'destination', tid: 'joba.0', attempt: 2, peerId: 'h2-peer' });
    t.outgoing.destination({ type: 'destination', tid: 'joba.1', attempt: 2, peerId: 'h2-peer' });
    expect(t.outgoing.takeDestination('joba.0')).toEqual({ attempt: 2, peerId: 'h2-peer' });
    expect(t.outgoing.takeDestination('joba.0')).toBeNull();
    t.outgoing.forget('joba.1');
    expect(t.outgoing.takeDestination('joba.1')).toBeNull();
  });
});
