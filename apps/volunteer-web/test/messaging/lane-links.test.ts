import type { LaneGift } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { LaneLinks } from '../../src/host/messaging/lane-links.ts';
import type { LaneCarrier } from '../../src/host/messaging/lanes.ts';
import { fakeLinkFrames } from '../support/fake-link-frames.ts';
import { FakeCarrier } from '../support/lane-control.ts';

const ice = { iceServers: [{ urls: 'turn:127.0.0.1:3478', username: 'u', credential: 'c' }], iceTransportPolicy: 'relay' as const };
const offer = { description: { type: 'offer' as const, sdp: 'v=0' } };
const candidate = { candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: null } };

function page({ jobs = ['joba', 'jobb'], running = ['joba.1', 'jobb.1'] } = {}) {
  const frames = fakeLinkFrames((jobId) => jobs.includes(jobId));
  const given: [number, number, LaneGift][] = [];
  const links = new LaneLinks({
    frames,
    ice: () => ice,
    give: (link, stream, gift, made) => {
      if (!running.includes(gift.tid)) return false;
      given.push([link, stream, gift]);
      made(true);
      return true;
    },
  });
  const made: boolean[] = [];
  const make = (carrier: LaneCarrier, stream: number, tid: string) => links.make(carrier, stream, { type: 'lane-out', tid, to: `${tid.split('.')[0]}.9` }, (ok) => made.push(ok));
  return { links, frames, given, made, make };
}

describe('LaneLinks', () => {
  it('on the page that opened the channel: offers one link per job, made the first time a lane needs it', () => {
    const p = page();
    const toB = new FakeCarrier('peer-b', true);
    p.make(toB, 2, 'joba.1');
    p.make(toB, 4, 'joba.1');
    p.make(toB, 6, 'jobb.1');
    expect(p.frames.links.map(({ id, jobId, offer, ice }) => ({ id, jobId, offer, ice }))).toEqual([
      { id: 0, jobId: 'joba', offer: true, ice },
      { id: 1, jobId: 'jobb', offer: true, ice },
    ]);
    expect(p.given.map(([link, stream]) => [link, stream])).toEqual([
      [0, 2],
      [0, 4],
      [1, 6],
    ]);
    expect(p.made).toEqual([true, true, true]);
    // the offer and candidates the frame makes go to the other page
    p.frames.links[0]!.events.signal(offer);
    expect(toB.sent).toEqual([{ op: 'signal', job: 'joba', signal: offer }]);
    // the other page asks for a link: made if not there yet, refused for a job with no frame here
    p.links.control(toB, { op: 'link', job: 'joba' });
    p.links.control(toB, { op: 'link', job: 'jobz' });
    expect(p.frames.links).toHaveLength(2);
    expect(toB.sent.at(-1)).toEqual({ op: 'unlink', job: 'jobz' });
    // an offer to the offering side opens nothing
    p.links.control(toB, { op: 'signal', job: 'jobz', signal: offer });
    expect(p.frames.links).toHaveLength(2);
  });

  it('on the page that accepted the channel: asks for the link, and takes the offer', () => {
    const p = page();
    const fromA = new FakeCarrier('peer-a', false);
    p.make(fromA, 3, 'joba.1');
    expect(p.frames.links.map(({ jobId, offer }) => [jobId, offer])).toEqual([['joba', false]]);
    expect(fromA.sent).toEqual([{ op: 'link', job: 'joba' }]);
    p.links.control(fromA, { op: 'signal', job: 'joba', signal: offer });
    p.links.control(fromA, { op: 'signal', job: 'joba', signal: candidate });
    expect(p.frames.links[0]!.signals).toEqual([offer, candidate]);
    // an offer for another job opens its link without asking back; a candidate of no link is dropped
    p.links.control(fromA, { op: 'signal', job: 'jobb', signal: offer });
    p.links.control(fromA, { op: 'signal', job: 'jobc', signal: candidate });
    expect(p.frames.links.map(({ jobId, signals }) => [jobId, signals.length])).toEqual([
      ['joba', 2],
      ['jobb', 1],
    ]);
    expect(fromA.sent).toEqual([{ op: 'link', job: 'joba' }]);
    // an offer for a job this page has no frame of is answered with unlink
    p.links.control(fromA, { op: 'signal', job: 'jobz', signal: offer });
    expect(fromA.sent.at(-1)).toEqual({ op: 'unlink', job: 'jobz' });
  });

  it('closes a link when either side unlinks it or the channel breaks, and makes a new one for the next lane', () => {
    const p = page();
    const toB = new FakeCarrier('peer-b', true);
    p.make(toB, 2, 'joba.1');
    p.make(toB, 4, 'jobb.1');
    p.links.control(toB, { op: 'unlink', job: 'joba' });
    expect(p.frames.links.map((l) => l.closed)).toEqual([true, false]);
    // the frame's end failed: the other page hears of it
    p.frames.links[1]!.events.unlinked();
    expect(toB.sent.at(-1)).toEqual({ op: 'unlink', job: 'jobb' });
    expect(p.frames.links[1]!.closed).toBe(true);
    p.make(toB, 6, 'joba.1');
    expect(p.frames.links).toHaveLength(3);
    p.links.carrierBroken(toB);
    expect(p.frames.links[2]!.closed).toBe(true);
    expect(toB.sent.at(-1)).toEqual({ op: 'unlink', job: 'jobb' });
  });

  it('makes no lane where the page has no frame of the job, or the task does not run', () => {
    const p = page({ jobs: ['joba'], running: [] });
    const toB = new FakeCarrier('peer-b', true);
    p.make(toB, 2, 'jobb.1');
    p.make(toB, 4, 'joba.1');
    expect(p.made).toEqual([false, false]);
    expect(p.frames.links.map((l) => l.jobId)).toEqual(['joba']);
    const closed = new FakeCarrier('peer-c', true);
    closed.isOpen = false;
    p.make(closed, 2, 'joba.1');
    expect(p.made).toEqual([false, false, false]);
  });
});
