import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HostStatus, type HostReadings } from '../src/host/host-status.ts';

const counters = { local: 0, channelOut: 0, laneOut: 0, channelIn: 0, relayOut: 0, relayLaneOut: 0, relayIn: 0, resentAfterBreak: 0, forged: 0, channelsOpen: 0 };

function setup() {
  const readings: HostReadings = {
    connection: 'connecting',
    hostId: null,
    peerId: null,
    slots: 2,
    policy: 'idle',
    running: [],
    queued: 0,
    pendingResults: 0,
    workersStarted: 0,
    messages: counters,
    workersAlive: 0,
  };
  const status = new HostStatus(() => ({ ...readings }));
  return { status, readings };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('HostStatus', () => {
  it('takes its snapshot from the readings of the moment and its own counts', () => {
    const t = setup();
    t.readings.connection = 'connected';
    t.readings.workersAlive = 1;
    t.status.outcome(true);
    t.status.outcome(false);
    t.status.outcome(true);
    t.status.migratedOut();
    t.status.migratedIn(false);
    t.status.migratedIn(true);
    expect(t.status.snapshot()).toEqual({
      connection: 'connected',
      hostId: null,
      peerId: null,
      slots: 2,
      policy: 'idle',
      running: [],
      queued: 0,
      done: 2,
      failed: 1,
      pendingResults: 0,
      workersStarted: 0,
      messages: counters,
      paused: false,
      pauseReason: null,
      workersAlive: 1,
      migrations: { out: 1, in: 2, refilled: 1 },
      lastReclaim: null,
    });
  });

  it('pauses once per reclaim, and times it until no worker is left', () => {
    const t = setup();
    expect(t.status.resume()).toBe(false);
    const start = performance.now();
    expect(t.status.pause('input')).toBe(true);
    expect(t.status.pause('hidden')).toBe(false);
    expect([t.status.paused, t.status.pauseReason]).toEqual([true, 'input']);
    t.status.noteCleared(1);
    expect(t.status.snapshot().lastReclaim).toEqual({ reason: 'input', clearedMs: null });
    vi.advanceTimersByTime(30);
    t.status.noteCleared(0, start + 25);
    t.status.noteCleared(0);
    expect(t.status.snapshot().lastReclaim).toEqual({ reason: 'input', clearedMs: 25 });
    expect(t.status.resume()).toBe(true);
    expect(t.status.snapshot()).toMatchObject({ paused: false, pauseReason: null, lastReclaim: { reason: 'input', clearedMs: 25 } });
  });

  it('gives React the same snapshot until a second after a change, then a new one, once for all changes meanwhile', () => {
    const t = setup();
    const heard = vi.fn();
    const unsubscribe = t.status.subscribe(heard);
    const first = t.status.current();
    expect(t.status.current()).toBe(first);
    t.readings.queued = 3;
    t.status.changed();
    vi.advanceTimersByTime(500);
    t.status.changed();
    vi.advanceTimersByTime(499);
    expect(t.status.current()).toBe(first);
    vi.advanceTimersByTime(1);
    expect(heard).toHaveBeenCalledOnce();
    expect(t.status.current().queued).toBe(3);
    unsubscribe();
    t.status.changed();
    vi.advanceTimersByTime(1000);
    expect(heard).toHaveBeenCalledOnce();
  });

  it('shows a change made now at once, with the changes waiting for their turn', () => {
    const t = setup();
    const heard = vi.fn();
    t.status.subscribe(heard);
    t.readings.queued = 3;
    t.status.changed();
    vi.advanceTimersByTime(100);
    t.status.pause('input');
    t.status.changed(true);
    vi.advanceTimersByTime(0);
    expect(heard).toHaveBeenCalledOnce();
    expect(t.status.current()).toMatchObject({ paused: true, queued: 3 });
    vi.advanceTimersByTime(1000);
    expect(heard).toHaveBeenCalledOnce();
  });

  it('tells nobody after it stopped', () => {
    const t = setup();
    const heard = vi.fn();
    t.status.subscribe(heard);
    t.status.changed();
    t.status.stop();
    vi.advanceTimersByTime(1_000);
    expect(heard).not.toHaveBeenCalled();
  });
});
