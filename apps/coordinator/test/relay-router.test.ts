import { MAX_ENVELOPE_BYTES } from '@webpvm/vm-protocol';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { RelayRouter, type Whereabouts } from '../src/scheduler/relay-router.ts';

const bytes = (n: number) => new Uint8Array([n]);

describe('RelayRouter', () => {
  it('forwards to the holder, keeps messages for a task not started in order, and drops those for ended tasks', () => {
    const where = new Map<string, Whereabouts>();
    const router = new RelayRouter((tid) => where.get(tid) ?? { kind: 'gone' }, pino({ level: 'silent' }));
    const got: number[] = [];
    const send = (b: Uint8Array) => got.push(b[0]!);

    where.set('j.1', { kind: 'not-started' });
    router.route('j.1', bytes(1));
    router.route('j.1', bytes(2));
    expect(got).toEqual([]);
    router.release('j.1', send);
    expect(got).toEqual([1, 2]);

    where.set('j.2', { kind: 'not-started' });
    router.route('j.2', bytes(3));
    where.set('j.2', { kind: 'held-by', send });
    // a message arriving after the task started still comes after the ones that waited
    router.route('j.2', bytes(4));
    expect(got).toEqual([1, 2, 3, 4]);

    where.set('j.3', { kind: 'not-started' });
    router.route('j.3', bytes(5));
    router.forget('j.3');
    router.release('j.3', send);
    router.route('j.4', bytes(6));
    expect(got).toEqual([1, 2, 3, 4]);
    expect(router.dropped).toBe(2);
  });

  it('keeps at most twice the largest message for one job, so one job cannot fill what the others need', () => {
    const router = new RelayRouter(() => ({ kind: 'not-started' }), pino({ level: 'silent' }));
    const big = new Uint8Array(MAX_ENVELOPE_BYTES);
    expect(router.route('a.1', big, 'h1')).toBe(true);
    expect(router.route('a.2', big, 'h2')).toBe(true);
    expect(router.route('a.3', new Uint8Array(1), 'h3')).toBe(false);
    // another job still has room
    expect(router.route('b.1', big, 'h3')).toBe(true);
    // what job a held is handed over: its room comes back
    router.release('a.1', () => {});
    expect(router.route('a.3', new Uint8Array(1), 'h3')).toBe(false);
    expect(router.route('a.3', new Uint8Array(1), 'h1')).toBe(true);
  });

  it('keeps at most one of the largest messages from one host, so one host of a job cannot fill what its others need', () => {
    const router = new RelayRouter(() => ({ kind: 'not-started' }), pino({ level: 'silent' }));
    const half = new Uint8Array(MAX_ENVELOPE_BYTES / 2);
    expect(router.route('a.1', half, 'flooder')).toBe(true);
    expect(router.route('a.2', half, 'flooder')).toBe(true);
    expect(router.route('a.3', new Uint8Array(1), 'flooder')).toBe(false);
    // the job's other hosts, and the coordinator's own notices, still have room
    expect(router.route('a.3', half, 'honest')).toBe(true);
    expect(router.route('a.3', new Uint8Array(1))).toBe(true);
    router.forget('a.1');
    expect(router.route('a.4', new Uint8Array(1), 'flooder')).toBe(true);
  });
});
