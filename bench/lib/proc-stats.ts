/**
 * CPU time and memory of a server and every process below it, read from
 * /proc. CPU is utime+stime of each live process (children included, so a
 * node:cluster primary and its edge workers count together); the bench
 * generator shares the cores, so deliveries per server CPU-second is the fair
 * comparison between servers.
 */
import { readFileSync, readdirSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface ProcStat {
  pid: number;
  ppid: number;
  cpuTicks: number;
}

function readStat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] = state (field 3), ppid = field 4, utime = 14, stime = 15
    return { pid, ppid: Number(rest[1]), cpuTicks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return null;
  }
}

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The given roots and all their descendants. */
export function processTree(roots: readonly number[]): ProcStat[] {
  const all: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const s = readStat(pid);
    if (s) all.push(s);
  }
  const inTree = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of all) {
      if (!inTree.has(s.pid) && inTree.has(s.ppid)) {
        inTree.add(s.pid);
        grew = true;
      }
    }
  }
  return all.filter((s) => inTree.has(s.pid));
}

export interface Usage {
  /** CPU seconds per pid, so a process that exits mid-run is not subtracted. */
  cpu: Map<number, number>;
  rss: number;
}

export function sample(roots: readonly number[]): Usage {
  const cpu = new Map<number, number>();
  let rss = 0;
  for (const s of processTree(roots)) {
    cpu.set(s.pid, s.cpuTicks / TICKS_PER_SECOND);
    rss += rssBytes(s.pid);
  }
  return { cpu, rss };
}

/** CPU seconds spent between two samples, summed over the processes of the later one. */
export function cpuBetween(before: Usage, after: Usage): number {
  let total = 0;
  for (const [pid, sec] of after.cpu) total += sec - (before.cpu.get(pid) ?? 0);
  return total;
}
