import type { ClockRequest } from './clock.ts';

// The page's timers (clock.ts): a dedicated worker's timers are not throttled when the page is hidden.
const scope = self as unknown as { postMessage(id: number): void; onmessage: ((event: { data: ClockRequest }) => void) | null };
const timers = new Map<number, ReturnType<typeof setTimeout>>();

scope.onmessage = ({ data }) => {
  if (data[0] === 'clear') {
    clearTimeout(timers.get(data[1]));
    timers.delete(data[1]);
    return;
  }
  const [kind, id, ms] = data;
  if (kind === 'interval') {
    timers.set(id, setInterval(() => scope.postMessage(id), ms));
    return;
  }
  timers.set(
    id,
    setTimeout(() => {
      timers.delete(id);
      scope.postMessage(id);
    }, ms),
  );
};
