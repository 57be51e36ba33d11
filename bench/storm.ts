/**
 * The reconnect storm: a node with N clients dies and they all land on the
 * other. `node dist/bench/storm.js [--clients N] [--live N] [--repeat N]
 * [--quick] [--out dir] [--profile dir]`.
 *
 * The scenario (nodes, clients, rates) is bench/lib/storm.ts'; the storm
 * smoke test runs a small one on every `npm test`.
 *
 * Reported: time from the kill until every storm client is subscribed again
 * with every missed message (p50, p99, all), server CPU per reconnect (and
 * beyond the calm phase's rate), the kernel's listen-queue overflows and SYN
 * retransmissions over the storm (machine-wide counters), the
 * live clients' latency p50/p99 in the calm phase and during the storm and
 * their ratio, recoveries, holes and repeats (must be 0).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { runStorm, type StormResult } from './lib/storm.js';
import { textFlag } from './lib/flags.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => textFlag(args, name);
const quick = args.includes('--quick');
const stormClients = Number(flag('clients') ?? (quick ? 2000 : 10_000));
const liveClients = Number(flag('live') ?? (quick ? 300 : 1000));
const repeat = Number(flag('repeat') ?? 1);
const here = dirname(fileURLToPath(import.meta.url));
const outDir = flag('out') ?? join(here, '..', '..', 'bench', 'results', quick ? 'storm-quick' : 'storm');
/** --profile DIR: run the servers with --cpu-prof into DIR (read them with bench/lib/profile-summary.ts). */
const profileDir = flag('profile');
const runOnce = (): Promise<StormResult> => runStorm({ stormClients, liveClients, calmMs: quick ? 3000 : 5000, timeoutMs: 120_000, ...(profileDir ? { profileDir } : {}) });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const runs: StormResult[] = [];
  for (let i = 1; i <= repeat; i++) {
    const r = await runOnce();
    runs.push(r);
    console.log(
      `[${i}/${repeat}] ${r.stormClients} clients moved: all recovered in ${r.allRecoveredMs.toFixed(0)} ms (p50 ${r.recoveredP50Ms.toFixed(0)}, p99 ${r.recoveredP99Ms.toFixed(0)}; subscribe reply p50 ${r.subscribedP50Ms.toFixed(0)}, p99 ${r.subscribedP99Ms.toFixed(0)}), ` +
        `${r.cpuPerReconnectUs.toFixed(0)} µs server CPU each (${r.extraCpuPerReconnectUs.toFixed(0)} beyond the calm rate); kernel listen-queue overflows ${r.listenOverflows}, SYN retransmits ${r.synRetransmits}; live p99 calm ${r.calm.p99.toFixed(1)} ms, storm ${r.storm.p99.toFixed(1)} ms (${r.p99Ratio.toFixed(2)}x); ` +
        `recovered:false ${r.recoveredFalse}, holes ${r.gaps}, repeats ${r.repeats}, reconnect attempts failed and retried ${r.failedReconnects}${r.firstError ? ` (first: ${r.firstError})` : ''}, not recovered ${r.pending}; load average ${r.loadAverage.toFixed(1)}`,
    );
  }
  const m = (f: (r: StormResult) => number): number => median(runs.map(f));
  const command = `node dist/bench/storm.js ${args.join(' ')}`.trim();
  const md = [
    `# Reconnect storm`,
    '',
    `Command: \`${command}\` (medians of ${repeat} run(s))`,
    '',
    `${stormClients} authenticated clients on a node that is killed move to the other node; ${liveClients} live clients there get 100 msg/s.`,
    '',
    '| | median | per run |',
    '|---|---:|---|',
    `| all storm clients recovered after the kill, ms | ${m((r) => r.allRecoveredMs).toFixed(0)} | ${runs.map((r) => r.allRecoveredMs.toFixed(0)).join(', ')} |`,
    `| one client's recovery p50 / p99, ms | ${m((r) => r.recoveredP50Ms).toFixed(0)} / ${m((r) => r.recoveredP99Ms).toFixed(0)} | ${runs.map((r) => `${r.recoveredP50Ms.toFixed(0)} / ${r.recoveredP99Ms.toFixed(0)}`).join(', ')} |`,
    `| subscribe reply p50 / p99, ms | ${m((r) => r.subscribedP50Ms).toFixed(0)} / ${m((r) => r.subscribedP99Ms).toFixed(0)} | ${runs.map((r) => `${r.subscribedP50Ms.toFixed(0)} / ${r.subscribedP99Ms.toFixed(0)}`).join(', ')} |`,
    `| server CPU per reconnect+recover, µs | ${m((r) => r.cpuPerReconnectUs).toFixed(0)} | ${runs.map((r) => r.cpuPerReconnectUs.toFixed(0)).join(', ')} |`,
    `| the same beyond the servers' calm-phase rate (the live traffic), µs | ${m((r) => r.extraCpuPerReconnectUs).toFixed(0)} | ${runs.map((r) => r.extraCpuPerReconnectUs.toFixed(0)).join(', ')} |`,
    `| kernel listen-queue overflows / SYN retransmits during the storm (whole machine) | ${m((r) => r.listenOverflows).toFixed(0)} / ${m((r) => r.synRetransmits).toFixed(0)} | ${runs.map((r) => `${r.listenOverflows} / ${r.synRetransmits}`).join(', ')} |`,
    `| live p50 / p99 calm, ms | ${m((r) => r.calm.p50).toFixed(1)} / ${m((r) => r.calm.p99).toFixed(1)} | ${runs.map((r) => `${r.calm.p50.toFixed(1)} / ${r.calm.p99.toFixed(1)}`).join(', ')} |`,
    `| live p50 / p99 during the storm, ms | ${m((r) => r.storm.p50).toFixed(1)} / ${m((r) => r.storm.p99).toFixed(1)} | ${runs.map((r) => `${r.storm.p50.toFixed(1)} / ${r.storm.p99.toFixed(1)}`).join(', ')} |`,
    `| live p99 storm / calm | ${m((r) => r.p99Ratio).toFixed(2)}x | ${runs.map((r) => `${r.p99Ratio.toFixed(2)}x`).join(', ')} |`,
    `| recovered: false / holes / repeats / reconnect attempts failed (each retried) / not recovered | | ${runs.map((r) => `${r.recoveredFalse}/${r.gaps}/${r.repeats}/${r.failedReconnects}/${r.pending}`).join(', ')} |`,
    `| machine load average at the kill | | ${runs.map((r) => r.loadAverage.toFixed(1)).join(', ')} |`,
    '',
  ].join('\n');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'storm.json'), JSON.stringify({ command, runs }, null, 2));
  writeFileSync(join(outDir, 'storm.md'), md);
  console.log(`\n${md}\nwritten to ${outDir}`);
  if (runs.some((r) => r.gaps > 0 || r.repeats > 0 || r.pending > 0)) {
    console.log('HOLES, REPEATS OR CLIENTS NOT RECOVERED');
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
