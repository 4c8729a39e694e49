import { describe, expect, it } from 'vitest';
import { parseHostOptions } from '../src/host/host-options.ts';

describe('parseHostOptions', () => {
  it('defaults to one slot fewer than the cores, and the idle policy', () => {
    expect(parseHostOptions('', 8)).toEqual({ slots: 7, policy: 'idle', p2p: true, idleMs: 30_000, replayLog: true, senderLog: true, minBattery: 0 });
    expect(parseHostOptions('', 1)).toEqual({ slots: 1, policy: 'idle', p2p: true, idleMs: 30_000, replayLog: true, senderLog: true, minBattery: 0 });
    expect(parseHostOptions('', undefined)).toEqual({ slots: 1, policy: 'idle', p2p: true, idleMs: 30_000, replayLog: true, senderLog: true, minBattery: 0 });
  });

  it('reads slots and policy from the query, within limits', () => {
    expect(parseHostOptions('?slots=3&policy=hidden', 8)).toEqual({ slots: 3, policy: 'hidden', p2p: true, idleMs: 30_000, replayLog: true, senderLog: true, minBattery: 0 });
    expect(parseHostOptions('?slots=1000&policy=always', 8)).toEqual({ slots: 64, policy: 'always', p2p: true, idleMs: 30_000, replayLog: true, senderLog: true, minBattery: 0 });
  });

  it('falls back to the defaults on values it cannot read', () => {
    expect(parseHostOptions('?slots=0&policy=sometimes', 4)).toEqual({ slots: 3, policy: 'idle', p2p: true, idleMs: 30_000, replayLog: true, senderLog: true, minBattery: 0 });
    expect(parseHostOptions('?slots=two', 4)).toEqual({ slots: 3, policy: 'idle', p2p: true, idleMs: 30_000, replayLog: true, senderLog: true, minBattery: 0 });
    expect(parseHostOptions('?slots=', 4)).toEqual({ slots: 3, policy: 'idle', p2p: true, idleMs: 30_000, replayLog: true, senderLog: true, minBattery: 0 });
  });

  it('turns data channels off with p2p=off only', () => {
    expect(parseHostOptions('?p2p=off', 4).p2p).toBe(false);
    expect(parseHostOptions('?p2p=on', 4).p2p).toBe(true);
    expect(parseHostOptions('?p2p=no', 4).p2p).toBe(true);
  });

  it('reads a battery level in percent, and ignores the battery otherwise', () => {
    expect(parseHostOptions('?battery=25', 4).minBattery).toBe(0.25);
    expect(parseHostOptions('?battery=250', 4).minBattery).toBe(0);
    expect(parseHostOptions('?battery=low', 4).minBattery).toBe(0);
  });

  it('has workers keep a sender log unless told senderLog=off', () => {
    expect(parseHostOptions('?senderLog=off', 4).senderLog).toBe(false);
    expect(parseHostOptions('?senderLog=on', 4).senderLog).toBe(true);
  });

  it('keeps a replay log unless told replayLog=off', () => {
    expect(parseHostOptions('?replayLog=off', 4).replayLog).toBe(false);
    expect(parseHostOptions('?replayLog=no', 4).replayLog).toBe(true);
  });

  it('reads idleMs, and falls back to 30 s for anything unreadable', () => {
    expect(parseHostOptions('?idleMs=1500', 4).idleMs).toBe(1500);
    expect(parseHostOptions('?idleMs=-1', 4).idleMs).toBe(30_000);
    expect(parseHostOptions('?idleMs=soon', 4).idleMs).toBe(30_000);
  });
});
