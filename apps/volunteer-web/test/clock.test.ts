import { describe, expect, it } from 'vitest';
import { type ClockPort, type ClockRequest, workerClock } from '../src/host/clock.ts';

/** The clock worker's side, by hand: what the page asked for, and firing a timer as the worker would. */
function fakePort() {
  const requests: ClockRequest[] = [];
  const port: ClockPort = { postMessage: (request) => requests.push(request), onmessage: null };
  const fire = (id: number) => port.onmessage!({ data: id });
  return { port, requests, fire };
}

describe('workerClock', () => {
  it('runs a timeout once when its worker fires it, and an interval each time', () => {
    const { port, requests, fire } = fakePort();
    const clock = workerClock(port);
    const calls: string[] = [];
    clock.setTimeout(() => calls.push('once'), 20);
    clock.setInterval(() => calls.push('beat'), 5000);
    expect(requests).toEqual([
      ['timeout', 1, 20],
      ['interval', 2, 5000],
    ]);
    fire(1);
    fire(1);
    fire(2);
    fire(2);
    expect(calls).toEqual(['once', 'beat', 'beat']);
  });

  it('clears a timer in its worker, and a late firing of it does nothing', () => {
    const { port, requests, fire } = fakePort();
    const clock = workerClock(port);
    let called = false;
    const timer = clock.setTimeout(() => (called = true), 20);
    clock.clear(timer);
    clock.clear(timer);
    clock.clear(null);
    fire(1);
    expect(called).toBe(false);
    expect(requests).toEqual([
      ['timeout', 1, 20],
      ['clear', 1],
    ]);
  });
});
