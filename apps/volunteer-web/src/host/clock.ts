/** A timer set with a Clock: pass it back to `clear`. A worker clock's are its own numbers. */
export type Timer = ReturnType<typeof setTimeout>;

/**
 * Timers for the host page's work. A hidden page's own timers run about once a second, and after
 * five minutes hidden once a minute (Chromium's intensive throttling); timers in a dedicated
 * worker are not throttled, nor are the messages a worker posts to the page. Volunteers leave
 * their tabs hidden, so everything on the host's path — heartbeats, reconnects, grace periods,
 * acknowledgements, re-sends — takes its timers from a clock, and the page's clock lives in a
 * worker (`workerClock`). Tests and Node use `systemClock`, which fake timers can drive.
 */
export interface Clock {
  setTimeout(callback: () => void, ms: number): Timer;
  setInterval(callback: () => void, ms: number): Timer;
  /** Stops a timeout or an interval; null and fired timers are ignored. */
  clear(timer: Timer | null | undefined): void;
}

/** The global timers, looked up at each call so that test fake timers apply. */
export const systemClock: Clock = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  setInterval: (callback, ms) => globalThis.setInterval(callback, ms),
  clear: (timer) => {
    if (timer !== null && timer !== undefined) globalThis.clearTimeout(timer);
  },
};

/** What the page sends the clock worker: set a timeout, set an interval, or clear one. */
export type ClockRequest = ['timeout' | 'interval', number, number] | ['clear', number];

/** The part of a Worker the clock uses; tests hand a fake. */
export interface ClockPort {
  postMessage(request: ClockRequest): void;
  onmessage: ((event: { data: number }) => void) | null;
}

/** A clock whose timers run in a worker (clock-worker.ts) and fire here as that worker's messages. */
export function workerClock(port: ClockPort = new Worker(new URL('./clock-worker.ts', import.meta.url), { type: 'module' }) as unknown as ClockPort): Clock {
  const callbacks = new Map<number, { callback: () => void; repeat: boolean }>();
  let nextId = 1;
  port.onmessage = ({ data: id }) => {
    const timer = callbacks.get(id);
    if (!timer) return;
    if (!timer.repeat) callbacks.delete(id);
    timer.callback();
  };
  const set = (kind: 'timeout' | 'interval', callback: () => void, ms: number): Timer => {
    const id = nextId++;
    callbacks.set(id, { callback, repeat: kind === 'interval' });
    port.postMessage([kind, id, ms]);
    return id as unknown as Timer;
  };
  return {
    setTimeout: (callback, ms) => set('timeout', callback, ms),
    setInterval: (callback, ms) => set('interval', callback, ms),
    clear: (timer) => {
      const id = timer as unknown as number;
      if (!callbacks.delete(id)) return;
      port.postMessage(['clear', id]);
    },
  };
}
