/**
 * Profiles a server under one bench workload: `node dist/bench/profile.js
 * <server> <scenario> [--quick] [--cluster | --pair] [--nodes N] [--rate msg/s]
 * [--out dir]` starts it with --cpu-prof (node:cluster edge workers inherit
 * the flag), runs the workload, stops it and prints, for every profile
 * written (the director's process, each edge worker, forwarder nodes), self
 * time by area, the functions with the most total time (a flame graph's
 * widths) and the hottest by self time, over the measured phase only. `--out
 * dir` keeps the .cpuprofile files (open them in Chrome's DevTools or
 * speedscope for the flame graph itself).
 *
 * Servers: tidings (ZeroMQ Publisher), tidings-ws (publishing over a client
 * websocket), or a peer. Scenarios: fanout-1k, many-channels, small-rooms,
 * many-channels-1k, connect, latency-1k, and scale-rate: 1 000 subscribers
 * per node of a cluster (--nodes, default 1) at a fixed rate (--rate, default
 * 20), as the bench's scale-rate scenarios.
 */
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { role, summary, type Window } from './lib/profile-summary.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from './lib/servers.js';
import { runWorkload, oneChannel, manyChannels, roomsOf, type Workload } from './lib/scenario.js';
import type { ServerKind } from './lib/protocols.js';
import { textFlag } from './lib/flags.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const valued = ['--out', '--nodes', '--rate'];
  const opt = (name: string): string | undefined => textFlag(argv, name);
  const [kind = 'tidings', scenario = 'fanout-1k'] = argv.filter((a, i) => !a.startsWith('--') && !valued.includes(argv[i - 1] ?? ''));
  const quick = argv.includes('--quick');
  const nodes = opt('nodes') === undefined ? undefined : Number(opt('nodes'));
  const dir = opt('out') ?? mkdtempSync(join(tmpdir(), 'tidings-prof-'));
  mkdirSync(dir, { recursive: true });
  const base = { payload: 100, mode: 'saturate' as const, durationMs: 4000, warmupMs: 500 };
  const workloads: Record<string, Workload> = {
    'scale-rate': { scenario, subscriptions: oneChannel(1000 * (nodes ?? 1)), channels: 1, payload: 100, mode: 'rate', rate: Number(opt('rate') ?? 20), durationMs: 8000, warmupMs: 1000, processes: 2 },
    'fanout-1k': { ...base, scenario, subscriptions: oneChannel(quick ? 300 : 1000), channels: 1, processes: 2 },
    'many-channels': { ...base, scenario, subscriptions: manyChannels(10_000, 5500), channels: 10_000, processes: 2 },
    'small-rooms': { ...base, scenario, subscriptions: oneChannel(10), channels: 1, window: 2000, processes: 1 },
    'many-channels-1k': { ...base, scenario, subscriptions: roomsOf(1000, 10), channels: 1000, window: 10_000, processes: 2 },
    // Connection cost: authenticated connects+subscribes (each subscriber its own JWT), then idle.
    connect: { scenario, subscriptions: oneChannel(quick ? 1000 : 5000), channels: 1, payload: 0, mode: 'connect', durationMs: 0, warmupMs: 0, processes: 2, manySourceAddresses: true },
    'latency-1k': { scenario, subscriptions: oneChannel(1000), channels: 1, payload: 100, mode: 'rate', rate: 100, durationMs: 5000, warmupMs: 500, processes: 2 },
  };
  const cluster = argv.includes('--pair') ? 'pair' : argv.includes('--cluster') || nodes !== undefined;
  const server = await startServer(kind as ServerKind, { execArgv: ['--cpu-prof', `--cpu-prof-dir=${dir}`], cluster, ...(nodes !== undefined ? { nodes } : {}) });
  let phase: Window | undefined;
  try {
    const r = await runWorkload(server, workloads[scenario]!);
    phase = r.phase;
    if (r.mode === 'connect') console.log(`${r.connections} connects, ${r.cpuPerConnectUs.toFixed(0)} µs server CPU each, ${r.rssPerConnKB.toFixed(1)} KB each`);
    else console.log(`${r.deliveriesPerSec.toFixed(0)} deliveries/s, ${r.deliveriesPerCpuSec.toFixed(0)} per CPU-s, ${r.publishedPerCpuSec.toFixed(0)} messages per CPU-s, p50 ${r.latencyMs.p50.toFixed(2)} p99 ${r.latencyMs.p99.toFixed(2)} ms, loss ${r.loss}`);
  } finally {
    await server.stop();
  }
  await new Promise((r) => setTimeout(r, 1000));
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.cpuprofile'))) {
    console.log(`\n## ${role(join(dir, f))}: ${join(dir, f)}\n`);
    for (const line of summary(join(dir, f), 20, phase)) console.log(line);
  }
}

void main();
