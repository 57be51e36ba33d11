/**
 * Profiles a server under one bench workload: `node dist/bench/profile.js
 * <server> <scenario> [--quick] [--cluster] [--nodes N] [--rate msg/s]` starts
 * it with --cpu-prof (node:cluster edge workers inherit the flag), runs the
 * workload, stops it and prints the hottest functions by self time of every
 * profile written. `scale-rate`: 1 000 subscribers per node of a cluster
 * (--nodes, default 1) at a fixed rate (--rate, default 20), as the bench's
 * scale-rate scenarios.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { hottest } from './lib/profile-summary.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from './lib/servers.js';
import { runWorkload, oneChannel, manyChannels, type Workload } from './lib/scenario.js';
import type { ServerKind } from './lib/protocols.js';

async function main(): Promise<void> {
  const [kind = 'tidings', scenario = 'fanout-1k'] = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !['--nodes', '--rate'].includes(all[i - 1] ?? ''));
  const quick = process.argv.includes('--quick');
  const opt = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const nodes = opt('nodes') === undefined ? undefined : Number(opt('nodes'));
  const dir = mkdtempSync(join(tmpdir(), 'tidings-prof-'));
  const workloads: Record<string, Workload> = {
    'scale-rate': { scenario, subscriptions: oneChannel(1000 * (nodes ?? 1)), channels: 1, payload: 100, mode: 'rate', rate: Number(opt('rate') ?? 20), durationMs: 8000, warmupMs: 1000, processes: 2 },
    'fanout-1k': { scenario, subscriptions: oneChannel(quick ? 300 : 1000), channels: 1, payload: 100, mode: 'saturate', durationMs: 4000, warmupMs: 500, processes: 2 },
    'many-channels': { scenario, subscriptions: manyChannels(10_000, 5500), channels: 10_000, payload: 100, mode: 'saturate', durationMs: 4000, warmupMs: 500, processes: 2 },
    // Connection cost: authenticated connects+subscribes (each subscriber its own JWT), then idle.
    connect: { scenario, subscriptions: oneChannel(quick ? 1000 : 5000), channels: 1, payload: 0, mode: 'connect', durationMs: 0, warmupMs: 0, processes: 2, manySourceAddresses: true },
    'latency-1k': { scenario, subscriptions: oneChannel(1000), channels: 1, payload: 100, mode: 'rate', rate: 100, durationMs: 5000, warmupMs: 500, processes: 2 },
  };
  const server = await startServer(kind as ServerKind, { execArgv: ['--cpu-prof', `--cpu-prof-dir=${dir}`], cluster: process.argv.includes('--cluster') || nodes !== undefined, ...(nodes !== undefined ? { nodes } : {}) });
  try {
    const r = await runWorkload(server, workloads[scenario]!);
    if (r.mode === 'connect') console.log(`${r.connections} connects, ${r.cpuPerConnectUs.toFixed(0)} µs server CPU each, ${r.rssPerConnKB.toFixed(1)} KB each`);
    else console.log(`${r.deliveriesPerSec.toFixed(0)} deliveries/s, ${r.deliveriesPerCpuSec.toFixed(0)} per CPU-s, p50 ${r.latencyMs.p50.toFixed(2)} p99 ${r.latencyMs.p99.toFixed(2)} ms, loss ${r.loss}`);
  } finally {
    await server.stop();
  }
  await new Promise((r) => setTimeout(r, 1000));
  for (const f of readdirSync(dir)) {
    console.log(`\n${join(dir, f)}`);
    for (const line of hottest(join(dir, f))) console.log(line);
  }
}

void main();
