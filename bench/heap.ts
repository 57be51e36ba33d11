/**
 * Where an idle connection's memory goes, process by process: `node
 * dist/bench/heap.js [--connections N] [--anonymous] [--cluster] [--rss-only] [--top N] [--keep]
 * [--node-args "--flag ..."]` starts
 * Tidings with heap snapshots on SIGUSR2, opens N idle subscribers (one
 * channel; each with its own JWT unless --anonymous), takes a heap snapshot
 * of every Tidings process before and after, and prints per process the RSS
 * and V8 heap growth per connection and the object kinds that grew most
 * (bytes per connection). What RSS holds beyond the heap (socket buffers,
 * ZeroMQ's subscription tries, malloc) is RSS growth minus heap growth.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from './lib/servers.js';
import { Generator } from './lib/generator.js';
import { processTree } from './lib/proc-stats.js';
import { channelName } from './lib/scenario.js';
import { summariseHeap, type HeapSummary } from './lib/heap-summary.js';
import { textFlag } from './lib/flags.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => textFlag(args, name);
const connections = Number(flag('connections') ?? 5000);
const anonymous = args.includes('--anonymous');
const cluster = args.includes('--cluster');
/** Only RSS per process: a heap snapshot grows the process's RSS, so RSS figures are read without them. */
const rssOnly = args.includes('--rss-only');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rssKB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  return m ? Number(m[1]) : 0;
}

/** Signal every process and wait until each has written one more snapshot; returns file per pid. */
async function snapshot(dir: string, pids: number[]): Promise<Map<number, string>> {
  const before = new Set(readdirSync(dir));
  for (const pid of pids) process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 120_000;
  const out = new Map<number, string>();
  while (out.size < pids.length && Date.now() < deadline) {
    await sleep(500);
    for (const f of readdirSync(dir)) {
      if (before.has(f) || !f.endsWith('.heapsnapshot')) continue;
      const pid = Number(/\.(\d+)\.\d+\.\d+\.heapsnapshot$/.exec(f)?.[1]);
      if (!pids.includes(pid) || out.has(pid)) continue;
      // Written once its size stops growing.
      const size = statSync(join(dir, f)).size;
      await sleep(300);
      if (statSync(join(dir, f)).size === size && size > 0) out.set(pid, join(dir, f));
    }
  }
  if (out.size < pids.length) throw new Error(`only ${out.size} of ${pids.length} heap snapshots written`);
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-heap-'));
  const nodeArgs = (flag('node-args') ?? '').split(' ').filter((a) => a !== '');
  const server = await startServer('tidings', { cluster, execArgv: [...nodeArgs, '--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] });
  const gen = new Generator();
  try {
    await sleep(1000);
    const pids = processTree(server.pids).map((p) => p.pid);
    const rss0 = new Map(pids.map((p) => [p, rssKB(p)]));
    const snap0 = rssOnly ? null : await snapshot(dir, pids);
    const targets = Array.from({ length: connections }, (_, i) => ({
      kind: server.kind,
      url: server.urls[i % server.urls.length]!,
      channels: [channelName(0)],
      localAddress: `127.0.0.${2 + (i % 8)}`,
      ...(anonymous ? {} : { user: `bench-user-${i}` }),
    }));
    await gen.prepare(targets, targets.map(() => [0]), 2, Date.now(), anonymous ? undefined : server.tokenSecret);
    await gen.open(120_000);
    await sleep(2000);
    const rss1 = new Map(pids.map((p) => [p, rssKB(p)]));
    const snap1 = rssOnly ? null : await snapshot(dir, pids);
    console.log(`${connections} idle ${anonymous ? 'anonymous' : 'authenticated'} connections, one subscription each${cluster ? ' (cluster)' : ''}`);
    let totalRss = 0;
    for (const pid of pids) {
      const rss = ((rss1.get(pid)! - rss0.get(pid)!) * 1024) / connections;
      totalRss += rss;
      if (!snap0 || !snap1) {
        console.log(`pid ${pid}: RSS +${(rss / 1024).toFixed(2)} KB per connection`);
        continue;
      }
      const a: HeapSummary = summariseHeap(snap0.get(pid)!);
      const b: HeapSummary = summariseHeap(snap1.get(pid)!);
      console.log(`\npid ${pid}: V8 heap +${((b.total - a.total) / connections / 1024).toFixed(2)} KB per connection (RSS here is inflated by the snapshots: see --rss-only)`);
      const grown = [...b.byKind].map(([k, v]) => [k, v - (a.byKind.get(k) ?? 0)] as const).sort((x, y) => y[1] - x[1]);
      for (const [k, v] of grown.slice(0, Number(flag("top") ?? 18))) if (v / connections >= 8) console.log(`  ${(v / connections).toFixed(0).padStart(6)} B  ${k}`);
    }
    if (rssOnly) console.log(`all processes: RSS +${(totalRss / 1024).toFixed(2)} KB per connection`);
  } finally {
    await gen.close();
    await server.stop();
    if (args.includes('--keep')) console.log(`snapshots kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
