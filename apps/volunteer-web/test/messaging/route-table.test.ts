import { LIMITS } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { RouteTable } from '../../src/host/messaging/route-table.ts';
import { FakeLinks } from '../support/fake-links.ts';
import { settle } from '../support/timing.ts';

function setup({ p2p = true } = {}) {
  let now = 0;
  const located: string[][] = [];
  const links = p2p ? new FakeLinks() : null;
  const routes = new RouteTable({ links, locate: (tids) => located.push(tids), now: () => now });
  return { routes, links: links!, located, advance: (ms: number) => (now += ms) };
}

describe('RouteTable', () => {
  it('asks where receivers run in one batch per turn, and again for one only after a second', async () => {
    const t = setup();
    t.routes.locate('joba.2');
    t.routes.locate('joba.3');
    t.routes.locate('joba.2');
    expect(t.located).toEqual([]);
    await settle();
    expect(t.located).toEqual([['joba.2', 'joba.3']]);
    t.advance(999);
    t.routes.locate('joba.2');
    await settle();
    expect(t.located).toHaveLength(1);
    t.advance(1);
    t.routes.locate('joba.2');
    await settle();
    expect(t.located).toEqual([['joba.2', 'joba.3'], ['joba.2']]);
  });

  it('splits a large ask into frames of at most itemsPerBatch tids', async () => {
    const t = setup();
    for (let i = 0; i < LIMITS.itemsPerBatch + 1; i++) t.routes.locate(`joba.${i}`);
    await settle();
    expect(t.located.map((tids) => tids.length)).toEqual([LIMITS.itemsPerBatch, 1]);
  });

  it('connects to the host the coordinator names, and gives its channel once open', async () => {
    const t = setup();
    t.routes.onRoutes([
      { tid: 'joba.2', peerId: 'peer-b' },
      { tid: 'joba.3', peerId: null },
    ]);
    expect(t.links.connects).toEqual(['peer-b']);
    expect(t.routes.linkTo('joba.2')).toBeNull();
    expect(t.links.connects).toEqual(['peer-b', 'peer-b']);
    const link = t.links.opened('peer-b');
    expect(t.routes.linkTo('joba.2')).toBe(link);
    expect(t.routes.linkTo('joba.3')).toBeNull();
    // a known receiver is not asked for
    t.routes.locate('joba.2');
    await settle();
    expect(t.located).toEqual([]);
  });

  it('forgets a route through a host that bounced the receiver or whose channel broke, and may ask at once', async () => {
    const t = setup();
    t.routes.locate('joba.2');
    t.routes.locate('joba.3');
    t.routes.onRoutes([
      { tid: 'joba.2', peerId: 'peer-b' },
      { tid: 'joba.3', peerId: 'peer-c' },
      { tid: 'joba.4', peerId: 'peer-c' },
    ]);
    t.links.opened('peer-b');
    t.links.opened('peer-c');
    t.routes.notAt('joba.2', 'peer-x');
    expect(t.routes.linkTo('joba.2')).not.toBeNull();
    t.routes.notAt('joba.2', 'peer-b');
    expect(t.routes.linkTo('joba.2')).toBeNull();
    t.routes.peerLost('peer-c');
    expect(t.routes.linkTo('joba.3')).toBeNull();
    expect(t.routes.linkTo('joba.4')).toBeNull();
    await settle();
    t.routes.locate('joba.2');
    t.routes.locate('joba.3');
    await settle();
    expect(t.located).toEqual([['joba.2', 'joba.3'], ['joba.2', 'joba.3']]);
  });

  it('with p2p off has no routes and asks for none', async () => {
    const t = setup({ p2p: false });
    t.routes.onRoutes([{ tid: 'joba.2', peerId: 'peer-b' }]);
    t.routes.locate('joba.2');
    await settle();
    expect(t.routes.linkTo('joba.2')).toBeNull();
    expect(t.located).toEqual([]);
  });
});
