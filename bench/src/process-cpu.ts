import fs from 'node:fs';

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  return statSeconds(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/**
 * CPU seconds of a process and its children, live and ended: a PostgreSQL server's, whose
 * connections are processes of their own. Ended children count once their parent has reaped them.
 */
export function treeCpuSeconds(pid: number): number {
  let total = withChildren(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) total += withChildren(stat);
  }
  return total;
}

/** User + system CPU seconds in a /proc stat line, and those of its reaped children. */
function withChildren(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
}

/** User + system CPU seconds in a /proc stat line, of a process or a thread (Linux clock ticks of 10 ms). */
export function statSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU seconds the whole machine has spent busy so far, from /proc/stat: user, nice, system and
 * steal (time the hypervisor gave this machine's cores to another), not interrupts, which no
 * process is charged for. Less what the bench's own processes used, it is what neighbours took.
 */
export function machineBusySeconds(): number {
  const [user, nice, system, , , , , steal] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + steal!) / 100;
}
