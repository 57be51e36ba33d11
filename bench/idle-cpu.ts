/**
 * What an idle Tidings costs: server CPU per second with no client, and with
 * `--connections N` idle authenticated subscribers, against NATS idle in the
 * same run. Timers, heartbeats and metrics sampling are what it measures.
 *
 *   node dist/bench/idle-cpu.js [--repeat 3] [--seconds 20] [--kinds tidings,tidings-cluster,nats]
 *
 * Each kind is started as the other benches start it (bench/lib/servers.ts:
 * `tidings` a single node, `tidings-cluster` a director and two forwarder
 * nodes), left alone for 3 s, then its processes' CPU is read over `seconds`
 * from /proc (every thread). Medians of the repetitions, with each run.
 */
import { startServer } from './lib/servers.js';
import type { ServerKind } from './lib/protocols.js';
import { sample, cpuBetween } from './lib/proc-stats.js';
import { textFlag } from './lib/flags.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => textFlag(args, name);
const repeat = Number(flag('repeat') ?? 3);
const seconds = Number(flag('seconds') ?? 20);
const kinds = (flag('kinds') ?? 'tidings,tidings-cluster,nats').split(',');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function once(kind: string): Promise<number> {
  const cluster = kind === 'tidings-cluster';
  const server = await startServer((cluster ? 'tidings' : kind) as ServerKind, cluster ? { cluster: true } : {});
  try {
    await sleep(3000);
    const before = sample(server.pids);
    await sleep(seconds * 1000);
    const after = sample(server.pids);
    return (cpuBetween(before, after) * 1000) / seconds;
  } finally {
    await server.stop();
  }
}

const results = new Map<string, number[]>(kinds.map((k) => [k, []]));
for (let r = 0; r < repeat; r++) {
  for (const kind of kinds) {
    const ms = await once(kind);
    results.get(kind)!.push(ms);
    console.log(`[${r + 1}/${repeat}] ${kind}: ${ms.toFixed(1)} ms of CPU per second idle`);
  }
}
console.log('\n| server | idle CPU, ms per second (median) | runs |\n|---|---:|---|');
for (const [kind, runs] of results) console.log(`| ${kind} | ${median(runs).toFixed(1)} | ${runs.map((x) => x.toFixed(1)).join(' / ')} |`);
