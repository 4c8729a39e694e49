import { describe, expect, it } from 'vitest';
import { SenderCheck } from '../../src/host/messaging/sender-check.ts';
import { FakeLink } from '../support/fake-links.ts';

function check() {
  const asked: string[] = [];
  const routes = new Map<string, string>();
  const senders = new SenderCheck({ runsAt: (tid, peerId) => routes.get(tid) === peerId, ask: (tid) => asked.push(tid) });
  const outcomes: string[] = [];
  const frame = (tid: string, link: FakeLink, bytes: number, label: string) =>
    senders.check(tid, link, bytes, () => outcomes.push(`${label} admitted`), () => outcomes.push(`${label} refused`));
  return { senders, routes, asked, outcomes, frame };
}

describe('SenderCheck', () => {
  it('holds at most 4096 frames: the next is refused at once, and room comes back as they are settled', () => {
    const t = check();
    const forger = new FakeLink('peer-x');
    for (let i = 0; i < 4096; i++) t.frame(`joba.${i % 7}`, forger, 10, 'held');
    expect(t.outcomes).toEqual([]);
    t.frame('joba.1', forger, 10, 'over');
    expect(t.outcomes).toEqual(['over refused']);
    t.senders.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    const ofJoba1 = Array.from({ length: 4096 }, (_, i) => i % 7).filter((n) => n === 1).length;
    expect(t.outcomes.filter((o) => o === 'held refused')).toHaveLength(ofJoba1);
    t.frame('joba.1', forger, 10, 'room');
    t.senders.onRoutes([{ tid: 'joba.1', peerId: 'peer-x' }]);
    expect(t.outcomes.at(-1)).toBe('room admitted');
    t.senders.stop();
  });

  it('holds at most 64 MiB of frames', () => {
    const t = check();
    const link = new FakeLink('peer-a');
    t.frame('joba.1', link, 48 * 1024 * 1024, 'big');
    t.frame('joba.1', link, 16 * 1024 * 1024 + 1, 'bigger');
    expect(t.outcomes).toEqual(['bigger refused']);
    t.senders.onRoutes([{ tid: 'joba.1', peerId: 'peer-a' }]);
    expect(t.outcomes).toEqual(['bigger refused', 'big admitted']);
    t.senders.stop();
  });

  it('lets a frame through at once, unheld and unasked, when its task is known to run at its peer', () => {
    const t = check();
    t.routes.set('joba.1', 'peer-a');
    t.frame('joba.1', new FakeLink('peer-a'), 10, 'known');
    expect(t.outcomes).toEqual(['known admitted']);
    expect(t.asked).toEqual([]);
  });
});
