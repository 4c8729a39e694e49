import { describe, expect, it } from 'vitest';
import { RelayLaneRequests, relayLaneUrl } from '../../src/host/messaging/relay-lane-requests.ts';

const pair = { from: 'j.0', to: 'j.1' };

function setup(patienceMs = 0) {
  let now = 0;
  const asked: string[] = [];
  const declined: string[] = [];
  const given: string[] = [];
  const running = new Set(['j.0', 'j.1']);
  const lanes = new RelayLaneRequests({
    ask: (p) => asked.push(`${p.from}>${p.to}`),
    decline: (token) => declined.push(token),
    giveOut: (p, token) => running.has(p.from) && given.push(`out ${p.from}>${p.to} ${token}`) > 0,
    giveIn: (p, token) => running.has(p.to) && given.push(`in ${p.from}>${p.to} ${token}`) > 0,
    patienceMs,
    maxLanes: 2,
    now: () => now,
  });
  return { lanes, asked, declined, given, running, advance: (ms: number) => (now += ms) };
}

describe('RelayLaneRequests', () => {
  it('asks once per pair and hands the sending end to the task once granted', () => {
    const t = setup();
    t.lanes.offer(pair);
    t.lanes.offer(pair);
    expect(t.asked).toEqual(['j.0>j.1']);
    expect(t.lanes.sends(pair)).toBe(false);
    t.lanes.granted({ type: 'lane', end: 'out', ...pair, token: 'a'.repeat(32) });
    expect(t.given).toEqual([`out j.0>j.1 ${'a'.repeat(32)}`]);
    expect(t.lanes.sends(pair)).toBe(true);
    t.advance(60_000);
    t.lanes.offer(pair);
    expect(t.asked).toHaveLength(1);
  });

  it('with data channels, waits for one to open before it asks', () => {
    const t = setup(3_000);
    t.lanes.offer(pair);
    t.advance(2_000);
    t.lanes.offer(pair);
    expect(t.asked).toEqual([]);
    t.advance(1_000);
    t.lanes.offer(pair);
    expect(t.asked).toEqual(['j.0>j.1']);
  });

  it('after a refusal, asks again only 10 s later; after a closed lane, 1 s later, longer each time one closes at once', () => {
    const t = setup();
    t.lanes.offer(pair);
    t.lanes.refused(pair);
    t.advance(9_999);
    t.lanes.offer(pair);
    expect(t.asked).toHaveLength(1);
    t.advance(1);
    t.lanes.offer(pair);
    expect(t.asked).toHaveLength(2);

    const token = 'b'.repeat(32);
    // a lane that carried messages for a while closes (its receiver moved): asked again a second later
    t.lanes.granted({ type: 'lane', end: 'out', ...pair, token });
    t.advance(5_000);
    t.lanes.closed(pair);
    expect(t.lanes.sends(pair)).toBe(false);
    t.lanes.offer(pair);
    t.advance(999);
    t.lanes.offer(pair);
    expect(t.asked).toHaveLength(2);
    t.advance(1);
    t.lanes.offer(pair);
    expect(t.asked).toHaveLength(3);

    // lanes that close as soon as they are given (a socket the browser refuses): 2 s, then 4 s
    const waits: number[] = [];
    for (let round = 0; round < 2; round++) {
      t.lanes.granted({ type: 'lane', end: 'out', ...pair, token });
      t.lanes.closed(pair);
      const asked = t.asked.length;
      let waited = 0;
      while (t.asked.length === asked) {
        t.advance(500);
        waited += 500;
        t.lanes.offer(pair);
      }
      waits.push(waited);
    }
    expect(waits).toEqual([2_000, 4_000]);
  });

  it('asks again when the coordinator never answered, and for no more pairs than its cap', () => {
    const t = setup();
    t.lanes.offer(pair);
    t.advance(10_000);
    t.lanes.offer(pair);
    expect(t.asked).toEqual(['j.0>j.1', 'j.0>j.1']);
    t.lanes.offer({ from: 'j.0', to: 'j.2' });
    t.lanes.offer({ from: 'j.0', to: 'j.3' });
    expect(t.asked).toEqual(['j.0>j.1', 'j.0>j.1', 'j.0>j.2']);
  });

  it('takes a receiving end for a task it runs, and declines one for a task it does not', () => {
    const t = setup();
    t.lanes.granted({ type: 'lane', end: 'in', from: 'j.5', to: 'j.1', token: 'c'.repeat(32) });
    expect(t.lanes.receives({ from: 'j.5', to: 'j.1' })).toBe(true);
    t.lanes.granted({ type: 'lane', end: 'in', from: 'j.5', to: 'j.7', token: 'd'.repeat(32) });
    expect(t.declined).toEqual(['d'.repeat(32)]);
    // a sending end nobody here asked for is not handed out
    t.lanes.granted({ type: 'lane', end: 'out', from: 'j.0', to: 'j.4', token: 'e'.repeat(32) });
    expect(t.given).toEqual([`in j.5>j.1 ${'c'.repeat(32)}`]);
  });

  it('forgets the lanes of a task that left, and every receiving end when the coordinator link drops', () => {
    const t = setup();
    t.lanes.offer(pair);
    t.lanes.granted({ type: 'lane', end: 'out', ...pair, token: 'a'.repeat(32) });
    t.lanes.granted({ type: 'lane', end: 'in', from: 'j.5', to: 'j.1', token: 'c'.repeat(32) });
    t.lanes.taskGone('j.0');
    expect(t.lanes.sends(pair)).toBe(false);
    expect(t.lanes.receives({ from: 'j.5', to: 'j.1' })).toBe(true);
    t.lanes.linkLost();
    expect(t.lanes.receives({ from: 'j.5', to: 'j.1' })).toBe(false);
    t.lanes.offer(pair);
    expect(t.asked).toEqual(['j.0>j.1', 'j.0>j.1']);
  });

  it('hands out a granted end as a URL on the coordinator socket’s origin', () => {
    expect(relayLaneUrl('wss://volunteer.example:8443/ws?x=1', 'a'.repeat(32))).toBe(`wss://volunteer.example:8443/lane?token=${'a'.repeat(32)}`);
  });
});
