import { describe, expect, it } from 'vitest';
import { FrameKind } from '../../src/host/messaging/channel-frames.ts';
import { Lanes, type LaneCarrier, type LanePair } from '../../src/host/messaging/lanes.ts';
import { FakeLaneEnd } from '../support/fake-peers.ts';
import { laneControlBytes, readLaneControl } from '../support/lane-control.ts';

/** A page channel lanes ride on: it records the lane frames sent and the ends created. */
class FakeCarrier implements LaneCarrier {
  isOpen = true;
  sent: unknown[] = [];
  ends: FakeLaneEnd[] = [];
  constructor(
    readonly remotePeerId: string,
    readonly outgoing: boolean,
  ) {}
  send(kind: FrameKind, payload: Uint8Array): void {
    expect(kind).toBe(FrameKind.lane);
    this.sent.push(readLaneControl(payload));
  }
  createLane(id: number): FakeLaneEnd {
    const end = new FakeLaneEnd(id);
    this.ends.push(end);
    return end;
  }
}

function page({ running = ['joba.1', 'joba.2'], now = 0, speaksFor = (() => true) as (tid: string, peerId: string) => boolean } = {}) {
  const given: { way: 'out' | 'in'; pair: LanePair; id: number }[] = [];
  const gone: LanePair[] = [];
  let clock = now;
  const carriers = new Map<string, FakeCarrier>();
  const lanes = new Lanes({
    carrier: (peerId) => carriers.get(peerId) ?? null,
    giveOut: (pair, end) => running.includes(pair.from) && given.push({ way: 'out', pair, id: (end as FakeLaneEnd).id }) > 0,
    giveIn: (pair, end) => running.includes(pair.to) && given.push({ way: 'in', pair, id: (end as FakeLaneEnd).id }) > 0,
    checkSender: (tid, carrier, admit, refuse) => (speaksFor(tid, carrier.remotePeerId) ? admit() : refuse()),
    gone: (pair) => gone.push(pair),
    now: () => clock,
  });
  const carrier = (peerId: string, outgoing: boolean) => {
    const c = new FakeCarrier(peerId, outgoing);
    carriers.set(peerId, c);
    return c;
  };
  return { lanes, given, gone, carrier, tick: (ms: number) => (clock += ms) };
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

  it('closes an end its task can no longer take, and ignores frames it cannot parse', () => {
    const p = page({ running: [] });
    const toB = p.carrier('peer-b', true);
    p.lanes.offer({ from: 'joba.1', to: 'joba.7' }, 'peer-b');
    p.lanes.control(toB, laneControlBytes({ op: 'ready', id: 2 }));
    expect(toB.ends.map((e) => e.readyState)).toEqual(['closed']);
    p.lanes.control(toB, laneControlBytes({ op: 'ready', id: 'two' }));
    p.lanes.control(toB, new Uint8Array([0xff]));
    expect(p.lanes.count).toBe(0);
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
    expect(fromA.ends.map((e) => [e.id, e.readyState])).toEqual([
      [2, 'open'],
      [6, 'closed'],
    ]);
    expect(p.lanes.carrierIn({ from: 'joba.1', to: 'joba.7' })).toBe(fromA);

    p.lanes.taskGone('joba.7');
    expect(fromA.sent.at(-1)).toEqual({ op: 'gone', id: 2 });
    expect(p.lanes.carrierIn({ from: 'joba.1', to: 'joba.7' })).toBeNull();
  });

  it('refuses a lane asked for in the name of a task the coordinator does not place at the asking peer, and makes no end', () => {
    const p = page({ running: ['joba.7'], speaksFor: (tid, peerId) => tid === 'joba.1' && peerId === 'peer-a' });
    const fromC = p.carrier('peer-c', false);
    p.lanes.control(fromC, laneControlBytes({ op: 'open', id: 2, from: 'joba.1', to: 'joba.7' }));
    expect(fromC.sent).toEqual([{ op: 'refused', id: 2 }]);
    expect(fromC.ends).toEqual([]);
    expect(p.given).toEqual([]);
    expect(p.lanes.carrierIn({ from: 'joba.1', to: 'joba.7' })).toBeNull();
  });
});
