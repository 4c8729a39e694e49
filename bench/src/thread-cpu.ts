import fs from 'node:fs';
import { cpuSeconds, statSeconds } from './process-cpu.ts';

/** CPU seconds by where they were spent: Node processes named by their pid, Chromium's by process type and thread. */
export type CpuByPlace = Map<string, number>;

/**
 * CPU seconds (user + system) the named Node processes and every Chromium process have used so
 * far, from /proc, summed by place: each Node process by its name; `page main threads`, `task
 * workers`, `renderers' other threads`, `network service`, `browser process` and `Chromium's
 * other processes`. With `browserGroup` (Browser.pid: the bench's Chromium leads a process group
 * of its own), only that browser's processes count, not another Chromium on a shared machine.
 */
export function cpuByPlace(node: Record<string, number>, browserGroup?: number): CpuByPlace {
  const places: CpuByPlace = new Map();
  const add = (place: string, seconds: number) => places.set(place, (places.get(place) ?? 0) + seconds);
  const named = new Map(Object.entries(node).map(([name, pid]) => [String(pid), name]));
  for (const pid of fs.readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const name = named.get(pid);
      const commandLine = name ? '' : fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!name && !commandLine.includes('chromium')) continue;
      if (!name && browserGroup !== undefined && processGroup(pid) !== browserGroup) continue;
      const type = commandLine.match(/--type=([\w-]+)/)?.[1] ?? 'browser';
      const total = cpuSeconds(Number(pid));
      if (type !== 'renderer' || name) {
        add(name ?? (type === 'utility' ? 'network service' : type === 'browser' ? 'browser process' : "Chromium's other processes"), total);
        continue;
      }
      // A task's worker thread may have ended before the second reading: what the renderer's
      // live main and helper threads do not account for is the workers'.
      let accounted = 0;
      for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
        const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).startsWith('DedicatedWorker')) continue;
        const seconds = statSeconds(stat);
        accounted += seconds;
        add(tid === pid ? 'page main threads' : "renderers' other threads", seconds);
      }
      add('task workers', total - accounted);
    } catch {
      // A process that ended between the listing and the read used nothing more.
    }
  }
  return places;
}

/** What each place used from `before` to `after`, in milliseconds per message for `messages`. */
export function msPerMessage(before: CpuByPlace, after: CpuByPlace, messages: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [place, seconds] of after) {
    const used = seconds - (before.get(place) ?? 0);
    if (used > 0) out[place] = +((1000 * used) / messages).toFixed(3);
  }
  return out;
}

/** The process group of a process, from /proc. */
function processGroup(pid: string): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}
