/**
 * The benchmark suite: every scenario against Tidings and its peers in the
 * same run, with the same generator. `node dist/bench/run.js [--quick]
 * [--only a,b] [--servers tidings,nats] [--repeat N] [--workers N] [--out dir]
 * [--scale-rate msg/s]`.
 * Writes results.json, results.md and SVG charts to bench/results/ (or --out).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { startServer, type ServerOptions } from './lib/servers.js';
import { runWorkload, oneChannel, manyChannels, roomsOf, type RunResult, type Workload } from './lib/scenario.js';
import { barChart, clusterLine, markdownTable, summarise } from './lib/report.js';
import type { ServerKind } from './lib/protocols.js';
import { textFlag } from './lib/flags.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => textFlag(args, name);
const quick = args.includes('--quick');
const repeat = Number(flag('repeat') ?? 1);
const only = flag('only')?.split(',');
const serverFilter = flag('servers')?.split(',');
/** Edge workers of a Tidings node where a case does not set them (default 1: one core for the edge, as the peers). */
const tidingsWorkers = flag('workers') === undefined ? undefined : Number(flag('workers'));
/** Tidings subscribers without tokens (by default each one connects with its own JWT, as users do). */
const anonymous = args.includes('--anonymous');
const here = dirname(fileURLToPath(import.meta.url));
const outDir = flag('out') ?? join(here, '..', '..', 'bench', 'results', quick ? 'quick' : 'full');

const ALL: ServerKind[] = ['tidings', 'ws-naive', 'ws-batched', 'socketio', 'nats'];
/** The cost of one message: Tidings on both publish paths against NATS and the two batched ws servers. */
const SMALL: ServerKind[] = ['tidings', 'tidings-ws', 'nats', 'ws-batched', 'ws-merged'];

interface Case {
  workload: Workload;
  servers: ServerKind[];
  options?: ServerOptions;
}

const q = (full: number, small: number): number => (quick ? small : full);
const dur = q(5000, 1500);
const warm = q(1000, 400);

function fan(scenario: string, subs: number, payload: number): Workload {
  return { scenario, subscriptions: oneChannel(subs), channels: 1, payload, mode: 'saturate', durationMs: dur, warmupMs: warm, processes: subs >= 1000 ? 2 : 1 };
}

/**
 * Messages per second of the scale-rate scenarios (1 000 subscribers per node). Low enough that no
 * process is busy for long: spaced-out messages cost one socket write each (about 10 µs here), so
 * 100 msg/s would already keep an edge worker most of a core busy and make it batch.
 */
const SCALE_RATE = Number(flag('scale-rate') ?? 20);

const cases: Case[] = [
  // Issue 15's ceiling: Tidings over ZeroMQ and over the websocket publish path against the merging ws server and NATS.
  { workload: fan('fanout-1k', q(1000, 300), 100), servers: [...ALL, 'tidings-ws', 'ws-merged', 'tidings-curve'] },
  { workload: fan('fanout-10k', q(10_000, 2000), 100), servers: ALL },
  { workload: { scenario: 'latency-1k', subscriptions: oneChannel(q(1000, 300)), channels: 1, payload: 100, mode: 'rate', rate: 100, durationMs: dur, warmupMs: warm, processes: 2 }, servers: ALL },
  // A light steady rate: what the hops cost when nothing queues (first-delivery p50 reported).
  { workload: { scenario: 'latency-20', subscriptions: oneChannel(q(1000, 300)), channels: 1, payload: 100, mode: 'rate', rate: 20, durationMs: dur, warmupMs: warm, processes: 2 }, servers: ['tidings', 'ws-batched', 'nats'] },
  {
    workload: { scenario: 'many-channels', subscriptions: manyChannels(q(10_000, 1000), q(5500, 550)), channels: q(10_000, 1000), payload: 100, mode: 'saturate', durationMs: dur, warmupMs: warm, processes: 2 },
    servers: ALL,
  },
  { workload: { scenario: 'idle-10k', subscriptions: oneChannel(q(10_000, 2000)), channels: 1, payload: 0, mode: 'idle', durationMs: 0, warmupMs: 0, processes: 2, manySourceAddresses: true }, servers: ALL },
  // One process may hold 20 000 descriptors here (hard limit): 50 000 connections need 3 edge workers and 5 generator processes.
  { workload: { scenario: 'idle-50k', subscriptions: oneChannel(q(50_000, 5000)), channels: 1, payload: 0, mode: 'idle', durationMs: 0, warmupMs: 0, processes: 5, manySourceAddresses: true }, servers: ['tidings'], options: { workers: 3 } },
  // NATS as a server for the publisher and two for the subscribers, laid out as this cluster (bench/lib/servers.ts).
  { workload: { ...fan('cluster-fanout-1k', q(1000, 300), 100) }, servers: ['tidings', 'tidings-curve', 'nats'], options: { cluster: true } },
  // Fan-out as forwarder nodes are added (docs/scaling.md): the same 1 000 subscribers spread over 1, 2, 3 nodes,
  // and 1 000 subscribers per node (each node carrying the same load).
  ...[1, 2, 3].map((n): Case => ({ workload: { ...fan(`scale-fanout-${n}n`, q(1000, 300), 100), processes: 2 }, servers: ['tidings'], options: { cluster: true, nodes: n } })),
  ...[1, 2, 3].map((n): Case => ({ workload: { ...fan(`scale-per-node-${n}n`, q(1000, 300) * n, 100), processes: 2 }, servers: ['tidings'], options: { cluster: true, nodes: n } })),
  // The same per-node load at a FIXED rate well below the machine's cores (a saturated run on one 2-core VM
  // starves each node more as nodes are added): does a node's CPU per delivery stay flat as nodes are added?
  ...[1, 2, 3].map((n): Case => ({
    workload: { scenario: `scale-rate-${n}n`, subscriptions: oneChannel(q(1000, 300) * n), channels: 1, payload: 100, mode: 'rate', rate: SCALE_RATE, durationMs: 2 * dur, warmupMs: warm, processes: 2 },
    servers: ['tidings'],
    options: { cluster: true, nodes: n },
  })),
  // 20 msg/s through a director node with its edge and a forwarder node, the 1 000 subscribers split over both.
  { workload: { scenario: 'cluster-latency-20', subscriptions: oneChannel(q(1000, 300)), channels: 1, payload: 100, mode: 'rate', rate: 20, durationMs: dur, warmupMs: warm, processes: 2 }, servers: ['tidings', 'nats'], options: { cluster: 'pair' } },
  { workload: { scenario: 'cluster-latency-1k', subscriptions: oneChannel(q(1000, 300)), channels: 1, payload: 100, mode: 'rate', rate: 100, durationMs: dur, warmupMs: warm, processes: 2 }, servers: ['tidings', 'nats'], options: { cluster: true } },
  // The cost of the cluster hops alone: few subscribers, so the edge's socket writes do not dominate.
  { workload: { scenario: 'latency-10', subscriptions: oneChannel(10), channels: 1, payload: 100, mode: 'rate', rate: 100, durationMs: dur, warmupMs: warm, processes: 1 }, servers: ['tidings', 'nats'] },
  { workload: { scenario: 'cluster-latency-10', subscriptions: oneChannel(10), channels: 1, payload: 100, mode: 'rate', rate: 100, durationMs: dur, warmupMs: warm, processes: 1 }, servers: ['tidings', 'tidings-curve'], options: { cluster: true } },
  { workload: fan('subs-100', 100, 100), servers: [...ALL, 'tidings-curve'] },
  // Small rooms: 1 publisher -> 10 subscribers of one channel, 2 000 messages in flight at most.
  { workload: { scenario: 'small-rooms', subscriptions: oneChannel(10), channels: 1, payload: 100, mode: 'saturate', window: 2000, durationMs: dur, warmupMs: warm, processes: 1 }, servers: SMALL },
  // 1 000 channels x 10 subscribers, each subscriber in one channel; publishes round-robin over the channels.
  {
    workload: { scenario: 'many-channels-1k', subscriptions: roomsOf(q(1000, 200), 10), channels: q(1000, 200), payload: 100, mode: 'saturate', window: q(10_000, 2000), durationMs: dur, warmupMs: warm, processes: 2 },
    servers: SMALL,
  },
  // Small rooms through the cluster: a director node with its edge and a forwarder node, 5 subscribers on each, publishing at the forwarder node;
  // NATS as two routed servers laid out the same way (the publisher at the second), what a cluster costs a native server.
  { workload: { scenario: 'cluster-small-rooms', subscriptions: oneChannel(10), channels: 1, payload: 100, mode: 'saturate', window: 2000, durationMs: dur, warmupMs: warm, processes: 1 }, servers: ['tidings', 'tidings-ws', 'nats'], options: { cluster: 'pair' } },
  { workload: fan('payload-16B', q(1000, 300), 16), servers: ALL },
  { workload: fan('payload-1KB', q(1000, 300), 1024), servers: ALL },
  { workload: fan('payload-16KB', q(1000, 300), 16_384), servers: ALL },
];

/**
 * Many connections need many descriptors: when the soft limit is below the
 * hard one, run again under a shell with `ulimit -n <hard>` (a process cannot
 * raise its own limit from Node). Returns true when the child ran instead.
 */
function rerunWithMoreDescriptors(): boolean {
  if (process.env['TIDINGS_BENCH_ULIMIT'] === '1') return false;
  const limits = spawnSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).stdout.trim().split('\n');
  const [soft, hard] = limits.map((l) => (l === 'unlimited' ? Infinity : Number(l)));
  if (!(soft! < hard!) || soft! >= 200_000) return false;
  const target = hard === Infinity ? 200_000 : hard!;
  const cmd = `ulimit -n ${target} && exec "$0" "$@"`;
  const r = spawnSync('sh', ['-c', cmd, process.execPath, ...process.execArgv, process.argv[1]!, ...args], { stdio: 'inherit', env: { ...process.env, TIDINGS_BENCH_ULIMIT: '1' } });
  process.exitCode = r.status ?? 1;
  return true;
}

/** Free ports are picked before the server binds them; on a shared machine another process may take one first. */
async function startWithRetry(kind: ServerKind, options: ServerOptions): Promise<Awaited<ReturnType<typeof startServer>>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServer(kind, options);
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE|Address already in use/.test((err as Error).message)) throw err;
      console.log(`${kind}: a port was taken meanwhile; starting again`);
    }
  }
}

async function main(): Promise<void> {
  if (rerunWithMoreDescriptors()) return;
  mkdirSync(outDir, { recursive: true });
  const runs: RunResult[] = [];
  const loadBefore = loadavg()[0]!;
  const selected = cases.filter((c) => !only || only.includes(c.workload.scenario));
  for (let rep = 1; rep <= repeat; rep++) {
    for (const c of selected) {
      for (const kind of c.servers.filter((s) => !serverFilter || serverFilter.includes(s))) {
        const server = await startWithRetry(kind, { ...(tidingsWorkers !== undefined ? { workers: tidingsWorkers } : {}), ...c.options });
        try {
          const load = loadavg()[0]!;
          const r = await runWorkload(server, { ...c.workload, anonymous });
          runs.push({ ...r, rep, load1: load } as RunResult);
          const checks = `${r.unacked !== undefined ? `, unacked ${r.unacked}` : ''}${r.historyMissing !== undefined ? `, history ${r.historyMissing === 0 ? 'complete' : `${r.historyMissing} incomplete`}` : ''}`;
          const lat =
            r.mode === 'idle' || r.mode === 'connect'
              ? `${r.rssPerConnKB.toFixed(1)} KB/conn, ${r.cpuPerConnectUs.toFixed(0)} µs server CPU per connect, ${r.connectsPerSec.toFixed(0)} connects/s`
              : `${(r.deliveriesPerSec / 1e6).toFixed(2)} M/s, ${(r.deliveriesPerCpuSec / 1e6).toFixed(2)} M/CPU-s, ${(r.publishedPerCpuSec / 1e3).toFixed(1)} k msg/CPU-s, p50 ${r.latencyMs.p50.toFixed(2)} p99 ${r.latencyMs.p99.toFixed(2)} ms${r.firstP50Ms ? `, first p50 ${r.firstP50Ms.toFixed(2)} ms` : ''}, loss ${r.loss}, ooo ${r.outOfOrder + r.foreign}${checks}`;
          console.log(`[${rep}/${repeat}] ${c.workload.scenario} ${server.label}: ${lat} (load ${load.toFixed(1)})`);
          if (r.deliveriesPerNodeCpuSec !== undefined) console.log(`  ${clusterLine(r)}`);
        } catch (err) {
          console.log(`[${rep}/${repeat}] ${c.workload.scenario} ${server.label}: FAILED ${(err as Error).message.split('\n')[0]}`);
        } finally {
          await server.stop();
        }
      }
    }
  }
  const summary = summarise(runs);
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model ?? '', memoryGB: Math.round(totalmem() / 2 ** 30), node: process.version, date: new Date().toISOString(), loadAverage1m: { start: loadBefore, end: loadavg()[0]! } };
  const command = `node dist/bench/run.js ${args.join(' ')}`.trim();
  writeFileSync(join(outDir, 'results.json'), JSON.stringify({ command, machine, repeat, summary, runs }, null, 2));
  const md = `# Bench results\n\nCommand: \`${command}\` (medians of ${repeat} run(s))\nMachine: ${machine.cpus} x ${machine.cpu}, ${machine.memoryGB} GB, Node ${machine.node}, ${machine.date}, load average (1 min) ${machine.loadAverage1m.start.toFixed(1)} at the start, ${machine.loadAverage1m.end.toFixed(1)} at the end\n\n${markdownTable(summary, runs)}`;
  writeFileSync(join(outDir, 'results.md'), md);
  const moving = summary.filter((r) => r.mode !== 'idle');
  writeFileSync(join(outDir, 'deliveries-per-cpu.svg'), barChart('Deliveries per server CPU-second', 'higher is better', moving, (r) => r.deliveriesPerCpuSec));
  writeFileSync(join(outDir, 'latency-p99.svg'), barChart('Latency p99', 'ms, lower is better', moving, (r) => r.latencyMs.p99));
  writeFileSync(join(outDir, 'idle-memory.svg'), barChart('Server memory per idle connection', 'KB, lower is better', summary.filter((r) => r.mode === 'idle'), (r) => r.rssPerConnKB));
  console.log(`\n${md}\nwritten to ${outDir}`);
  const bad = summary.filter((r) => r.loss > 0 || r.outOfOrder > 0 || r.foreign > 0 || (r.unacked ?? 0) > 0 || (r.ackOffsetJumps ?? 0) > 0 || (r.historyMissing ?? 0) > 0);
  if (bad.length) {
    console.log(`LOSS, REORDERING, UNACKNOWLEDGED PUBLISHES OR INCOMPLETE HISTORY in: ${bad.map((r) => `${r.scenario}/${r.server}`).join(', ')}`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
