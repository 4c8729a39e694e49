import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROTOCOL_VERSION, encode } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { AuthThrottle } from '../src/auth-throttle.ts';
import { loadConfig, startCoordinator } from '../src/coordinator.ts';
import { ResultValidator } from '../src/scheduler/result-validator.ts';
import { clock, closeSchedulers, connect, schedulerHarness, settle, spec } from './support/scheduler-harness.ts';

const HOUR = 3_600_000;
const token = 'wpvm_clock-jump-test';
const stops: (() => Promise<void>)[] = [];

afterEach(async () => {
  clock.jump = 0;
  vi.restoreAllMocks();
  await closeSchedulers();
  for (const stop of stops.splice(0)) await stop();
});

/**
 * The real wall clock (Date.now), made to jump: the function returned steps it by `ms` from then on,
 * as an NTP step or a VM resumed would. Faked before what reads it is made, which may keep Date.now.
 */
function steppedWallClock(): (ms: number) => void {
  const wall = Date.now.bind(Date);
  let step = 0;
  vi.spyOn(Date, 'now').mockImplementation(() => wall() + step);
  return (ms) => (step += ms);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('a step of the wall clock, in the scheduler', () => {
  it('expires no lease and no taskTimeoutMs when the wall clock jumps an hour forward', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([0]), 'p', 'o', 'job1');
    scheduler.jobs.submit(spec([1], { taskTimeoutMs: 60_000 }), 'p', 'o', 'job2');
    const a = connect(scheduler, 'ha', 2);
    await settle();
    expect(a.assigned().map((t) => t.tid).sort()).toEqual(['job1.0', 'job2.0']);
    clock.jump = HOUR;
    clock.now += 1000;
    scheduler.tick();
    await settle();
    expect(a.of('cancel')).toEqual([]);
    expect(scheduler.hosts.get('ha')?.assigned.size).toBe(2);
  });

  it('still expires a lease and a taskTimeoutMs on time, measured monotonically, when the wall clock jumps an hour back', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([0]), 'p', 'o', 'job1');
    scheduler.jobs.submit(spec([1], { taskTimeoutMs: 60_000 }), 'p', 'o', 'job2');
    const a = connect(scheduler, 'ha', 2);
    await settle();
    clock.jump = -HOUR;
    clock.now += 59_000;
    scheduler.tick();
    await settle();
    expect(a.of('cancel')).toEqual([]);
    // past the 30 minutes a lease lasts before the job's first outcome
    clock.now += 30 * 60_000;
    scheduler.tick();
    await settle();
    expect(a.of('cancel').map((m) => [m.tasks[0]!.tid, m.reason]).sort()).toEqual([
      ['job1.0', 'lease expired'],
      ['job2.0', 'deadline passed'],
    ]);
  });

  it('replaces no replica when the wall clock jumps forward, and one past its lease when it jumps back', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([7], { replicas: 2, quorum: 2 }), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    const b = connect(scheduler, 'hb', 1);
    await settle();
    expect([a, b].map((l) => l.assigned().length)).toEqual([1, 1]);
    clock.jump = HOUR;
    clock.now += 1000;
    scheduler.tick();
    await settle();
    expect([...a.of('cancel'), ...b.of('cancel')]).toEqual([]);
    clock.jump = -HOUR;
    clock.now += 30 * 60_000;
    scheduler.tick();
    await settle();
    expect([...a.of('cancel'), ...b.of('cancel')].map((m) => m.reason)).toEqual(['lease expired', 'lease expired']);
  });

  it('measures a migration\'s latency on the monotonic clock, and shows when it began on the wall clock', async () => {
    const { scheduler, events } = schedulerHarness();
    scheduler.jobs.submit(spec([0]), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    await settle();
    const { attempt } = a.assigned()[0]!;
    connect(scheduler, 'hb', 1);
    const began = new Date(clock.now).toISOString();
    scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt }], 'input');
    clock.jump = HOUR;
    clock.now += 40;
    scheduler.hosts.setSlots('ha', 0);
    expect(scheduler.migrations.migrated('ha', { type: 'migrated', tid: 'job1.0', attempt, imageBytes: null, frozen: false, obtrusivenessMs: 4, via: 'coordinator' })).toBeNull();
    await settle();
    scheduler.migrations.resumed('hb', 'job1.0', attempt + 1);
    expect(events).toEqual([expect.objectContaining({ tid: 'job1.0', to: 'hb', at: began, latencyMs: 40 })]);
  });

  it('measures a host\'s completion rate on the monotonic clock', () => {
    const { scheduler } = schedulerHarness();
    connect(scheduler, 'ha', 1);
    const host = scheduler.hosts.get('ha')!;
    clock.jump = -HOUR;
    clock.now += 1000;
    scheduler.hosts.completed(host, 0, 10);
    // ten in a second, averaged with the rate before (none)
    expect(host.rate).toBe(5);
  });
});

async function coordinator(heartbeatMs: number, hostTimeoutMs: number) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-clock-'));
  const env = { PORT: '0', WEBPVM_DATA: dataDir, WEBPVM_ADMIN_TOKEN: token, WEBPVM_LOG_LEVEL: 'silent', WEBPVM_HEARTBEAT_MS: `${heartbeatMs}`, WEBPVM_HOST_TIMEOUT_MS: `${hostTimeoutMs}` };
  const started = await startCoordinator(loadConfig(env));
  stops.push(async () => {
    await started.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  return started.url;
}

/** A raw host that said hello and was welcomed; `closed` resolves with the close code. */
async function welcomedHost(url: string) {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/ws`);
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  const welcomed = new Promise<void>((resolve) =>
    socket.on('message', (data, binary) => {
      if (!binary && (JSON.parse(data.toString()) as { type: string }).type === 'welcome') resolve();
    }),
  );
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  socket.send(encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 1, running: [], userAgent: 'raw', volunteer: 'k'.repeat(43) }));
  await welcomed;
  return { socket, closed };
}

describe('a step of the wall clock, in the host gateway', () => {
  it('does not time out a host heard from within its timeout when the wall clock jumps an hour forward', async () => {
    const jump = steppedWallClock();
    const url = await coordinator(50, 5_000);
    const host = await welcomedHost(url);
    jump(HOUR);
    // several sweeps go by before the host is heard from again, well within its timeout
    await sleep(300);
    host.socket.send(encode({ type: 'heartbeat' }));
    await sleep(100);
    expect(host.socket.readyState).toBe(WebSocket.OPEN);
    const response = await fetch(`${url}/api/hosts`, { headers: { authorization: `Bearer ${token}` } });
    expect(((await response.json()) as { hosts: { connected: boolean }[] }).hosts).toEqual([expect.objectContaining({ connected: true })]);
  });

  it('still times out a silent host after its timeout when the wall clock jumps an hour back', async () => {
    const jump = steppedWallClock();
    const url = await coordinator(50, 300);
    const host = await welcomedHost(url);
    const welcomedAt = performance.now();
    jump(-HOUR);
    const outcome = await Promise.race([host.closed, sleep(3_000).then(() => 'still open')]);
    expect(outcome).toBe(1006);
    expect(performance.now() - welcomedAt).toBeGreaterThanOrEqual(250);
  });
});

describe('a step of the wall clock, elsewhere', () => {
  it('keeps an address throttled for its window when the wall clock jumps an hour forward', () => {
    const jump = steppedWallClock();
    const throttle = new AuthThrottle();
    // the failures an address may present in a window
    for (let i = 0; i < 20; i++) throttle.failed('10.0.0.1');
    expect(() => throttle.check('10.0.0.1')).toThrow(/too many refused tokens/);
    jump(HOUR);
    expect(() => throttle.check('10.0.0.1')).toThrow(/too many refused tokens/);
  });

  it('does not stop a validate well within its time limit when the wall clock jumps forward as it runs', async () => {
    const validator = await ResultValidator.load('export default (x) => x;\nexport function validate(a, b) { let n = 0; for (let i = 0; i < 100000; i++) n += i; return a === b; }', { timeoutMs: 10_000 });
    if (!validator) throw new Error('expected a validator');
    try {
      const wall = Date.now.bind(Date);
      let read = 0;
      // every read of the wall clock finds it an hour further on
      vi.spyOn(Date, 'now').mockImplementation(() => wall() + HOUR * read++);
      expect(validator.agree(1, 1)).toBe(true);
    } finally {
      validator.dispose();
    }
  });
});
