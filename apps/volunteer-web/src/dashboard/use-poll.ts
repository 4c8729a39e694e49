import { useEffect, useRef } from 'react';

/** Runs `poll` now and again `intervalMs` after each run ends, while `enabled`; restarts when `key` changes. */
export function usePoll(poll: () => Promise<void>, intervalMs: number, enabled: boolean, key: unknown): void {
  const latest = useRef(poll);
  latest.current = poll;
  useEffect(() => {
    if (!enabled) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const run = async () => {
      await latest.current().catch(() => undefined);
      if (!stopped) timer = setTimeout(run, intervalMs);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [intervalMs, enabled, key]);
}
