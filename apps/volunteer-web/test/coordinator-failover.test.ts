import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../src/host/clock.ts';
import { FAILOVER_AFTER_MS, FAILOVER_RETRY_MS, FAILOVER_SPREAD_MS, PROBE_TIMEOUT_MS, socketOpens } from '../src/host/coordinator-failover.ts';
import { CoordinatorLink, type LinkEvents, coordinatorSocketUrl } from '../src/host/coordinator-link.ts';
import { FakeSocket } from './support/fake-socket.ts';
import { memoryStore } from './support/memory-store.ts';
import { welcome } from './support/start-host.ts';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

const ORIGIN = 'http://a.example:8080';
const B = 'http://b.example:8080';
const C = 'https://c.example';

/** A page's link to coordinator `a`, with the coordinators that answer a probe, and where it moved to. */
async function page(answering: Set<string>, random = () => 0) {
  const sockets: FakeSocket[] = [];
  const probed: string[] = [];
  const moved: string[] = [];
  const events = new Proxy({} as LinkEvents, { get: () => () => {} });
  const link = new CoordinatorLink({
    url: 'ws://a.example:8080/ws',
    slots: () => 2,
    userAgent: 'vitest',
    volunteerKey: 'vitest-volunteer-key-0123456789abcdef',
    store: memoryStore(),
    heldTasks: () => [],
    events,
    createSocket: () => {
      const socket = new FakeSocket();
      sockets.push(socket);
      return socket;
    },
    failover: {
      origin: ORIGIN,
      reachable: async (url) => {
        probed.push(url);
        return answering.has(url);
      },
      move: (url) => moved.push(url),
      random,
    },
  });
  await link.start();
  const welcomed = async (coordinators: string[]) => {
    sockets.at(-1)!.open();
    sockets.at(-1)!.receive({ ...welcome, coordinators });
    await vi.advanceTimersByTimeAsync(0);
  };
  /** The coordinator goes away: this socket closes, and every reconnect after it fails. */
  const coordinatorDies = () => {
    const fail = () => {
      const socket = sockets.at(-1)!;
      if (!socket.closed) socket.close();
    };
    fail();
    const timer = setInterval(fail, 10);
    return () => clearInterval(timer);
  };
  return { link, sockets, probed, moved, welcomed, coordinatorDies };
}

describe('a page whose coordinator dies (docs/cluster.md, "Failover")', () => {
  it('moves, once its coordinator has been out of reach for a while, to another of the cluster that answers', async () => {
    const p = await page(new Set([C]));
    await p.welcomed([ORIGIN, B, C]);
    expect(p.link.otherCoordinators).toEqual([B, C]);
    const stop = p.coordinatorDies();
    await vi.advanceTimersByTimeAsync(FAILOVER_AFTER_MS - 100);
    expect(p.probed).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    stop();
    expect(p.moved).toEqual([C]);
    // its own first; then B, which does not answer, may have been tried before C
    expect(p.probed[0]).toBe(ORIGIN);
    expect(p.probed.at(-1)).toBe(C);
  });

  it('stays with a coordinator that comes back (a restart), and counts afresh after the next outage', async () => {
    const answering = new Set([B]);
    const p = await page(answering);
    await p.welcomed([ORIGIN, B]);
    let stop = p.coordinatorDies();
    await vi.advanceTimersByTimeAsync(FAILOVER_AFTER_MS - 2_000);
    stop();
    // back between two reconnects of the backoff (the next is 12.75 s after the outage began)
    answering.add(ORIGIN);
    const sockets = p.sockets.length;
    await vi.advanceTimersByTimeAsync(2_100);
    expect(p.probed).toEqual([ORIGIN]);
    expect(p.moved).toEqual([]);
    expect(p.sockets.length).toBe(sockets + 1);
    await p.welcomed([ORIGIN, B]);
    expect(p.link.state).toBe('connected');
    await vi.advanceTimersByTimeAsync(FAILOVER_AFTER_MS * 2);
    expect(p.probed).toEqual([ORIGIN]);

    answering.delete(ORIGIN);
    stop = p.coordinatorDies();
    await vi.advanceTimersByTimeAsync(FAILOVER_AFTER_MS - 100);
    expect(p.moved).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    stop();
    expect(p.moved).toEqual([B]);
  });

  it('learns coordinators that join later, and tries again while none answers', async () => {
    const answering = new Set<string>();
    const p = await page(answering);
    await p.welcomed([ORIGIN]);
    p.sockets.at(-1)!.receive({ type: 'cluster', coordinators: [ORIGIN, B] });
    expect(p.link.otherCoordinators).toEqual([B]);
    const stop = p.coordinatorDies();
    await vi.advanceTimersByTimeAsync(FAILOVER_AFTER_MS + 100);
    expect(p.probed).toEqual([ORIGIN, B]);
    expect(p.moved).toEqual([]);
    answering.add(B);
    await vi.advanceTimersByTimeAsync(FAILOVER_RETRY_MS);
    stop();
    expect(p.probed).toEqual([ORIGIN, B, ORIGIN, B]);
    expect(p.moved).toEqual([B]);
  });

  it('waits for its own coordinator when it knows no other (a coordinator alone)', async () => {
    const p = await page(new Set([B]));
    await p.welcomed([]);
    const stop = p.coordinatorDies();
    await vi.advanceTimersByTimeAsync(FAILOVER_AFTER_MS * 3);
    stop();
    expect(p.probed).toEqual([]);
    expect(p.moved).toEqual([]);
    expect(p.link.state).toBe('offline');
  });

  it('refuses a cluster message naming something other than an http(s) origin', async () => {
    const p = await page(new Set());
    await p.welcomed([ORIGIN, B]);
    p.sockets.at(-1)!.receive({ type: 'cluster', coordinators: ['javascript:alert(1)'] });
    expect(p.link.otherCoordinators).toEqual([B]);
  });

  it('spreads the tabs of one dead coordinator over time', async () => {
    const late = await page(new Set([B]), () => 0.999);
    await late.welcomed([ORIGIN, B]);
    const stop = late.coordinatorDies();
    await vi.advanceTimersByTimeAsync(FAILOVER_AFTER_MS + FAILOVER_SPREAD_MS - 100);
    expect(late.moved).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    stop();
    expect(late.moved).toEqual([B]);
  });
});

describe('socketOpens', () => {
  class ProbeSocket {
    onopen: (() => void) | null = null;
    onerror: (() => void) | null = null;
    onclose: (() => void) | null = null;
    closed = false;
    constructor(readonly url: string) {}
    close() {
      this.closed = true;
    }
  }
  const probe = (url: string) => {
    let socket: ProbeSocket | undefined;
    const answer = socketOpens(coordinatorSocketUrl(new URL(url)), systemClock, (u) => (socket = new ProbeSocket(u)) as unknown as WebSocket);
    return { answer, socket: socket! };
  };

  it('answers true when the host socket opens, on ws for http and wss for https', async () => {
    const { answer, socket } = probe('https://c.example');
    expect(socket.url).toBe('wss://c.example/ws');
    socket.onopen!();
    await expect(answer).resolves.toBe(true);
    expect(socket.closed).toBe(true);
  });

  it('answers false on an error, and when nothing happens in time', async () => {
    const refused = probe(B);
    expect(refused.socket.url).toBe('ws://b.example:8080/ws');
    refused.socket.onerror!();
    await expect(refused.answer).resolves.toBe(false);
    const silent = probe(B);
    await vi.advanceTimersByTimeAsync(PROBE_TIMEOUT_MS);
    await expect(silent.answer).resolves.toBe(false);
    expect(silent.socket.closed).toBe(true);
  });
});
