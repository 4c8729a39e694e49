const WINDOW_MS = 1000;

/** At most `linesPerSecond` log lines per task; a chatty task must not flood the coordinator. */
export class LogLimiter {
  #linesPerSecond: number;
  #windows = new Map<string, { start: number; lines: number }>();

  constructor(linesPerSecond = 20) {
    this.#linesPerSecond = linesPerSecond;
  }

  allow(tid: string, now: number): boolean {
    const window = this.#windows.get(tid);
    if (!window || now - window.start >= WINDOW_MS) {
      this.#windows.set(tid, { start: now, lines: 1 });
      return true;
    }
    window.lines += 1;
    return window.lines <= this.#linesPerSecond;
  }

  forget(tid: string): void {
    this.#windows.delete(tid);
  }
}
