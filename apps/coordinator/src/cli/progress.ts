import { Presets, SingleBar } from 'cli-progress';

export interface ProgressBar {
  update(done: number, total: number, status?: string): void;
  stop(): void;
}

/**
 * A counter of tasks (or of `unit`) on stderr, so stdout stays clean for JSON. cli-progress draws
 * nothing when stderr is not a terminal, which is what logs and pipes want.
 */
export function progressBar(unit = 'tasks'): ProgressBar {
  const bar = new SingleBar(
    { stream: process.stderr, format: `{bar} {value}/{total} ${unit} {status}`, barsize: 30 },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, status = '') {
      if (!started) {
        bar.start(total, done, { status });
        started = true;
        return;
      }
      if (total !== bar.getTotal()) bar.setTotal(total);
      bar.update(done, { status });
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
