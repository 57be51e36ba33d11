/**
 * CPU time and memory of a server and every process below it, read from
 * /proc. CPU is the run time of each live process (children included, so a
 * node:cluster primary and its edge workers count together): the sum of its
 * threads' /proc/<pid>/task/<tid>/schedstat (nanoseconds, so a process that
 * used a few hundredths of a second is still measured exactly), or
 * utime+stime from /proc/<pid>/stat (10 ms ticks) where schedstat is
 * missing. The bench generator shares the cores, so deliveries per server
 * CPU-second is the fair comparison between servers.
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

/**
 * Run time of every thread of the process in seconds (ZeroMQ's I/O threads and libuv's pool included), or null
 * without schedstat. A thread that exits between two samples takes its time with it; Node's threads live as long
 * as their process.
 */
function preciseCpuSeconds(pid: number): number | null {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
      } catch {
        // the thread exited meanwhile
      }
    }
    return ns / 1e9;
  } catch {
    return null;
  }
}

/** Write-family system calls the process made (write, writev: how Node writes to a socket), from /proc/<pid>/io; 0 where unreadable. */
function writeCalls(pid: number): number {
  try {
    const m = /syscw:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'latin1'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
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

/** The given roots and all their descendants, each with the root it descends from. */
export function processTree(roots: readonly number[]): Array<ProcStat & { root: number }> {
  const all: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const s = readStat(pid);
    if (s) all.push(s);
  }
  const rootOf = new Map(roots.map((r) => [r, r]));
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of all) {
      const root = rootOf.get(s.ppid);
      if (!rootOf.has(s.pid) && root !== undefined) {
        rootOf.set(s.pid, root);
        grew = true;
      }
    }
  }
  return all.filter((s) => rootOf.has(s.pid)).map((s) => ({ ...s, root: rootOf.get(s.pid)! }));
}

export interface Usage {
  /** CPU seconds per pid, so a process that exits mid-run is not subtracted. */
  cpu: Map<number, number>;
  /** The root (one of sample()'s roots) each pid descends from. */
  rootOf: Map<number, number>;
  /** Write system calls per pid (socket writes, for writes per delivery). */
  writes: Map<number, number>;
  rss: number;
  /** With `threads`: run time in seconds per thread ("pid/tid"), with its name (comm: node's main thread, ZMQbg/IO/0, libuv-worker...). */
  threads?: Map<string, ThreadTime>;
}

/** A thread's run time (s) and how often it went to sleep and was woken (voluntary context switches). */
export interface ThreadTime {
  pid: number;
  comm: string;
  sec: number;
  wakes: number;
}

export function sample(roots: readonly number[], threads = false): Usage {
  const cpu = new Map<number, number>();
  const rootOf = new Map<number, number>();
  const writes = new Map<number, number>();
  const perThread = threads ? new Map<string, ThreadTime>() : undefined;
  let rss = 0;
  for (const s of processTree(roots)) {
    cpu.set(s.pid, preciseCpuSeconds(s.pid) ?? s.cpuTicks / TICKS_PER_SECOND);
    rootOf.set(s.pid, s.root);
    writes.set(s.pid, writeCalls(s.pid));
    rss += rssBytes(s.pid);
    if (perThread) threadTimes(s.pid, perThread);
  }
  return { cpu, rootOf, writes, rss, ...(perThread ? { threads: perThread } : {}) };
}

function threadTimes(pid: number, into: Map<string, ThreadTime>): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return;
  }
  for (const tid of tids) {
    try {
      const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'latin1').trim();
      const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'latin1'));
      into.set(`${pid}/${tid}`, { pid, comm, sec: ns / 1e9, wakes: m ? Number(m[1]) : 0 });
    } catch {
      // the thread exited meanwhile
    }
  }
}

/**
 * Where the CPU between two samples taken with `threads` went: per process
 * (named by `nameOf(pid, root)`) and, inside it, per kind of thread (numbered
 * names such as libuv-worker or V8 worker threads summed), in CPU-seconds,
 * with the times each kind of thread was woken (on a VM a wake-up can cost
 * more than the work it was woken for).
 */
export function threadsBetween(before: Usage, after: Usage, nameOf: (pid: number, root: number) => string): Array<{ process: string; pid: number; sec: number; threads: Array<[string, number, number]> }> {
  const out = new Map<string, Map<string, [number, number]>>();
  const pids = new Map<string, number>();
  for (const [key, t] of after.threads ?? []) {
    const b = before.threads?.get(key);
    if (!b) continue; // a thread that started during the phase: too short-lived to matter here
    const proc = nameOf(t.pid, after.rootOf.get(t.pid)!);
    pids.set(proc, t.pid);
    const kinds = out.get(proc) ?? new Map<string, [number, number]>();
    out.set(proc, kinds);
    const kind = t.comm.replace(/\d+$/, '#');
    const [sec, wakes] = kinds.get(kind) ?? [0, 0];
    kinds.set(kind, [sec + t.sec - b.sec, wakes + t.wakes - b.wakes]);
  }
  return [...out].map(([process, kinds]) => ({
    process,
    pid: pids.get(process)!,
    sec: [...kinds.values()].reduce((a, [v]) => a + v, 0),
    threads: [...kinds].map(([k, [sec, wakes]]): [string, number, number] => [k, sec, wakes]).sort((x, y) => y[1] - x[1]),
  }));
}

/**
 * CPU seconds spent between two samples, summed over the processes of the
 * later one; with `roots`, only over the processes below those roots (e.g. one
 * node of a cluster sampled as a whole).
 */
export function cpuBetween(before: Usage, after: Usage, roots?: readonly number[]): number {
  return between(before.cpu, after, roots);
}

/** Write system calls between two samples, as cpuBetween. */
export function writesBetween(before: Usage, after: Usage, roots?: readonly number[]): number {
  return between(before.writes, after, roots, after.writes);
}

function between(before: Map<number, number>, after: Usage, roots: readonly number[] | undefined, values = after.cpu): number {
  const keep = roots ? new Set(roots) : null;
  let total = 0;
  for (const [pid, v] of values) if (!keep || keep.has(after.rootOf.get(pid)!)) total += v - (before.get(pid) ?? 0);
  return total;
}

/**
 * The kernel's TCP counters of the whole machine (/proc/net/netstat,
 * TcpExt): listen-queue overflows and SYN retransmissions show a storm of
 * connections arriving faster than a server accepts them. Machine-wide: read
 * them around a run with nothing else connecting.
 */
export function tcpListenCounters(): { listenOverflows: number; synRetransmits: number } {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const i = lines.findIndex((l) => l.startsWith('TcpExt:'));
  const names = lines[i]?.split(/\s+/) ?? [];
  const values = lines[i + 1]?.split(/\s+/) ?? [];
  const at = (name: string): number => Number(values[names.indexOf(name)] ?? NaN);
  return { listenOverflows: at('ListenOverflows'), synRetransmits: at('TCPSynRetrans') };
}
