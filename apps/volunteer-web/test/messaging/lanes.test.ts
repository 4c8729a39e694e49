import { describe, expect, it } from 'vitest';
import type { LinkControl } from '../../src/host/messaging/lane-links.ts';
import { Lanes, type LaneCarrier, type LanePair } from '../../src/host/messaging/lanes.ts';
import { FakeCarrier, laneControlBytes } from '../support/lane-control.ts';

function page({ running = ['joba.1', 'joba.2'], now = 0, speaksFor = (() => true) as (tid: string, peerId: string) => boolean } = {}) {
  const given: { way: 'out' | 'in'; pair: LanePair; id: number }[] = [];
  /** Ends the frames were asked for, and could not make because their task does not run there. */
  const unmade: number[] = [];
  const linkFrames: [string, LinkControl][] = [];
  const gone: LanePair[] = [];
  let clock = now;
  const carriers = new Map<string, FakeCarrier>();
  const lanes = new Lanes({
    carrier: (peerId) => carriers.get(peerId) ?? null,
    make: (_carrier, id, gift, made) => {
      if (!running.includes(gift.tid)) {
        unmade.push(id);
        return made(false);
      }
      const pair = gift.type === 'lane-out' ? { from: gift.tid, to: gift.to } : { from: gift.from, to: gift.tid };
      given.push({ way: gift.type === 'lane-out' ? 'out' : 'in', pair, id });
      made(true);
    },
    link: (carrier, control) => linkFrames.push([carrier.remotePeerId, control]),
    checkSender: (tid, carrier, admit, refuse) => (speaksFor(tid, carrier.remotePeerId) ? admit() : refuse()),
    gone: (pair) => gone.push(pair),
    now: () => clock,
  });
  const carrier = (peerId: string, outgoing: boolean) => {
    const c = new FakeCarrier(peerId, outgoing);
    carriers.set(peerId, c);
    return c;
  };
  return { lanes, given, unmade, linkFrames, gone, carrier, tick: (ms: number) => (clock += ms) };
}

describe('Lanes, on the sender’s page', () => {
  it('asks once per pair on a stream id of its parity, and hands the task its end once the receiver’s page has one', () => {
    const p = page();
    const toB = p.carrier('peer-b', true);
    const pair = { from: 'joba.1', to: 'joba.7' };
    p.lanes.offer(pair, 'peer-b');
    p.lanes.offer(pair, 'peer-b');
    p.lanes.offer({ from: 'joba.1', to: 'joba.8' }, 'peer-b');
    expect(toB.sent).toEqual([
      { op: 'open', id: 2, from: 'joba.1', to: 'joba.7' },
      { op: 'open', id: 4, from: 'joba.1', to: 'joba.8' },
    ]);
    expect(p.lanes.carrierOf(pair)).toBeNull();
    p.lanes.control(toB, laneControlBytes({ op: 'ready', id: 2 }));
    expect(p.given).toEqual([{ way: 'out', pair, id: 2 }]);
    expect(p.lanes.carrierOf(pair)).toBe(toB);

    const accepted = p.carrier('peer-c', false);
    p.lanes.offer(pair, 'peer-c');
    p.lanes.offer({ from: 'joba.2', to: 'joba.7' }, 'peer-c');
    expect(accepted.sent).toEqual([{ op: 'open', id: 3, from: 'joba.2', to: 'joba.7' }]);
  });

  it('goes through the page channel for a while after a refusal, and tells when the receiving end is gone', () => {
    const p = page();
    const toB = p.carrier('peer-b', true);
    const pair = { from: 'joba.1', to: 'joba.7' };
    p.lanes.offer(pair, 'peer-b');
    p.lanes.control(toB, laneControlBytes({ op: 'refused', id: 2 }));
    p.tick(9_999);
    p.lanes.offer(pair, 'peer-b');
    expect(toB.sent).toHaveLength(1);
    p.tick(1);
    p.lanes.offer(pair, 'peer-b');
    expect(toB.sent.at(-1)).toEqual({ op: 'open', id: 4, from: 'joba.1', to: 'joba.7' });
    p.lanes.control(toB, laneControlBytes({ op: 'ready', id: 4 }));
    p.lanes.control(toB, laneControlBytes({ op: 'gone', id: 4 }));
    expect(p.gone).toEqual([pair]);
    expect(p.lanes.carrierOf(pair)).toBeNull();
  });

  it('forgets a lane whose end its frame could not make, so the pair may ask again, and ignores frames it cannot parse', () => {
    const p = page({ running: [] });
    const toB = p.carrier('peer-b', true);
    const pair = { from: 'joba.1', to: 'joba.7' };
    p.lanes.offer(pair, 'peer-b');
    p.lanes.control(toB, laneControlBytes({ op: 'ready', id: 2 }));
    expect(p.unmade).toEqual([2]);
    expect(p.lanes.carrierOf(pair)).toBeNull();
    p.lanes.control(toB, laneControlBytes({ op: 'ready', id: 'two' }));
    p.lanes.control(toB, new Uint8Array([0xff]));
    expect(p.lanes.count).toBe(0);
    p.lanes.offer(pair, 'peer-b');
    expect(toB.sent.at(-1)).toEqual({ op: 'open', id: 4, ...pair });
  });

  it('passes the link frames of its carrier on, checked', () => {
    const p = page();
    const toB = p.carrier('peer-b', true);
    const signal = { candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: null } };
    p.lanes.control(toB, laneControlBytes({ op: 'link', job: 'joba' }));
    p.lanes.control(toB, laneControlBytes({ op: 'signal', job: 'joba', signal }));
    p.lanes.control(toB, laneControlBytes({ op: 'signal', job: 'joba', signal: { description: { type: 'rollback', sdp: '' } } }));
    p.lanes.control(toB, laneControlBytes({ op: 'signal', job: 'joba', signal: { description: { type: 'offer', sdp: 'x'.repeat(16 * 1024 + 1) } } }));
    p.lanes.control(toB, laneControlBytes({ op: 'unlink', job: 'JOB A' }));
    expect(p.linkFrames).toEqual([
      ['peer-b', { op: 'link', job: 'joba' }],
      ['peer-b', { op: 'signal', job: 'joba', signal }],
    ]);
  });
});

describe('Lanes, on the receiver’s page', () => {
  it('hands the receiving task its end and answers ready; refuses the wrong parity, another job, or a task not running here', () => {
    const p = page({ running: ['joba.7'] });
    const fromA = p.carrier('peer-a', false);
    p.lanes.control(fromA, laneControlBytes({ op: 'open', id: 2, from: 'joba.1', to: 'joba.7' }));
    p.lanes.control(fromA, laneControlBytes({ op: 'open', id: 3, from: 'joba.1', to: 'joba.7' }));
    p.lanes.control(fromA, laneControlBytes({ op: 'open', id: 4, from: 'jobz.1', to: 'joba.7' }));
    p.lanes.control(fromA, laneControlBytes({ op: 'open', id: 6, from: 'joba.1', to: 'joba.8' }));
    expect(fromA.sent).toEqual([
      { op: 'ready', id: 2 },
      { op: 'refused', id: 3 },
      { op: 'refused', id: 4 },
      { op: 'refused', id: 6 },
    ]);
    expect(p.given).toEqual([{ way: 'in', pair: { from: 'joba.1', to: 'joba.7' }, id: 2 }]);
    // the frame was asked for the end of a task not running here, and could not make it
    expect(p.unmade).toEqual([6]);
    expect(p.lanes.carrierIn({ from: 'joba.1', to: 'joba.7' })).toBe(fromA);

    p.lanes.taskGone('joba.7');
    expect(fromA.sent.at(-1)).toEqual({ op: 'gone', id: 2 });
    expect(p.lanes.carrierIn({ from: 'joba.1', to: 'joba.7' })).toBeNull();
  });

  it('takes a pair’s new lane in place of the one it had: its sender asks again only once it gave that one up', () => {
    const p = page({ running: ['joba.7'] });
    const fromA = p.carrier('peer-a', false);
    const fromC = p.carrier('peer-c', false);
    p.lanes.control(fromA, laneControlBytes({ op: 'open', id: 2, from: 'joba.1', to: 'joba.7' }));
    // the sender left that host, whose worker's end stays open as it ends, and asks from another
    p.lanes.control(fromC, laneControlBytes({ op: 'open', id: 4, from: 'joba.1', to: 'joba.7' }));
    expect(fromC.sent).toEqual([{ op: 'ready', id: 4 }]);
    expect(p.lanes.carrierIn({ from: 'joba.1', to: 'joba.7' })).toBe(fromC);
    expect(p.lanes.count).toBe(1);
    p.lanes.taskGone('joba.7');
    expect(fromC.sent.at(-1)).toEqual({ op: 'gone', id: 4 });
    expect(fromA.sent).toEqual([{ op: 'ready', id: 2 }]);
  });

  it('answers only once its frame has handed the receiving task its end, and refuses if it could not', () => {
    const waiting: ((ok: boolean) => void)[] = [];
    const lanes = new Lanes({
      carrier: () => null,
      make: (_carrier, _id, _gift, made) => waiting.push(made),
      link: () => undefined,
      checkSender: (_tid, _carrier, admit) => admit(),
      gone: () => undefined,
    });
    const fromA = new FakeCarrier('peer-a', false);
    lanes.control(fromA, laneControlBytes({ op: 'open', id: 2, from: 'joba.1', to: 'joba.7' }));
    lanes.control(fromA, laneControlBytes({ op: 'open', id: 4, from: 'joba.1', to: 'joba.8' }));
    expect(fromA.sent).toEqual([]);
    waiting[1]!(false);
    waiting[0]!(true);
    expect(fromA.sent).toEqual([
      { op: 'refused', id: 4 },
      { op: 'ready', id: 2 },
    ]);
    expect(lanes.carrierIn({ from: 'joba.1', to: 'joba.8' })).toBeNull();
    expect(lanes.carrierIn({ from: 'joba.1', to: 'joba.7' })).toBe(fromA);
  });

  it('refuses a lane asked for in the name of a task the coordinator does not place at the asking peer, and asks its frame for no end', () => {
    const p = page({ running: ['joba.7'], speaksFor: (tid, peerId) => tid === 'joba.1' && peerId === 'peer-a' });
    const fromC = p.carrier('peer-c', false);
    p.lanes.control(fromC, laneControlBytes({ op: 'open', id: 2, from: 'joba.1', to: 'joba.7' }));
    expect(fromC.sent).toEqual([{ op: 'refused', id: 2 }]);
    expect(p.given).toEqual([]);
    expect(p.unmade).toEqual([]);
    expect(p.lanes.carrierIn({ from: 'joba.1', to: 'joba.7' })).toBeNull();
  });
});
