/**
 * The reconnect storm: a node with N clients dies and they all land on the
 * other. `node dist/bench/storm.js [--clients N] [--live N] [--repeat N]
 * [--quick] [--out dir] [--profile dir]`.
 *
 * A director node (no edge) and two forwarder nodes, one edge each. `--live`
 * clients (default 1 000) sit on node 2, subscribed to one channel that gets
 * 100 msg/s of 100 bytes; `--clients` storm clients (default 10 000) sit on
 * node 1, 100 per room, each room 1 msg/s. Every client has its own JWT.
 * After a calm phase node 1 is killed (SIGKILL, its whole process tree); its
 * clients reconnect to node 2 after the SDK's first retry delay and recover
 * from their last message (bench/lib/storm-worker.ts).
 *
 * Reported: time from the kill until every storm client is subscribed again
 * with every missed message (p50, p99, all), server CPU per reconnect, the
 * live clients' latency p50/p99 in the calm phase and during the storm and
 * their ratio, recoveries, holes and repeats (must be 0).
 */
import { fork } from 'node:child_process';
import { loadavg } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { startServer, BENCH_TOKEN_SECRET } from './lib/servers.js';
import { openPublisher } from './lib/publishers.js';
import { cpuBetween, processTree, sample } from './lib/proc-stats.js';
import { makePayload, monotonicMicros, nowMicros } from './lib/payload.js';
import type { StormFromWorker, StormToWorker } from './lib/storm-worker.js';
import { closeWorker } from './lib/ipc.js';
import { textFlag } from './lib/flags.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => textFlag(args, name);
const quick = args.includes('--quick');
const stormClients = Number(flag('clients') ?? (quick ? 2000 : 10_000));
const liveClients = Number(flag('live') ?? (quick ? 300 : 1000));
const repeat = Number(flag('repeat') ?? 1);
const here = dirname(fileURLToPath(import.meta.url));
const outDir = flag('out') ?? join(here, '..', '..', 'bench', 'results', quick ? 'storm-quick' : 'storm');
const ROOM_SIZE = 100;
const LIVE_RATE = 100;
const CALM_MS = quick ? 3000 : 5000;
const STORM_TIMEOUT_MS = 120_000;
const WORKER = join(here, 'lib', 'storm-worker.js');
/** --profile DIR: run the servers with --cpu-prof into DIR (read them with bench/lib/profile-summary.ts). */
const profileDir = flag('profile');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Worker {
  child: ReturnType<typeof fork>;
  recovered: number;
  waiters: Array<(m: StormFromWorker) => void>;
}

function spawnWorker(): Worker {
  const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
  const w: Worker = { child, recovered: 0, waiters: [] };
  child.on('message', (m: StormFromWorker) => {
    if (m.ev === 'recovered') w.recovered = m.count;
    else w.waiters.shift()?.(m);
  });
  return w;
}

function ask(w: Worker, msg: StormToWorker, timeoutMs: number): Promise<StormFromWorker> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`storm worker ${w.child.pid} did not answer in ${timeoutMs} ms`)), timeoutMs);
    w.waiters.push((m) => {
      clearTimeout(t);
      resolve(m);
    });
    w.child.send(msg);
  });
}

export interface StormResult {
  stormClients: number;
  liveClients: number;
  /** ms from the kill until all storm clients were recovered, and percentiles over clients. */
  allRecoveredMs: number;
  recoveredP50Ms: number;
  recoveredP99Ms: number;
  /** The same to the subscribe reply (the replay follows it). */
  subscribedP50Ms: number;
  subscribedP99Ms: number;
  /** Server CPU (director + surviving node) from the kill until all recovered, per storm client, µs. */
  cpuPerReconnectUs: number;
  calm: { p50: number; p99: number };
  storm: { p50: number; p99: number };
  p99Ratio: number;
  recoveredFalse: number;
  gaps: number;
  repeats: number;
  failedReconnects: number;
  /** The first reason a reconnect failed. */
  firstError: string;
  pending: number;
  /** The machine's 1-minute load average at the kill (a shared machine). */
  loadAverage: number;
}

async function runOnce(): Promise<StormResult> {
  const server = await startServer('tidings', { cluster: true, ...(profileDir ? { execArgv: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {}) });
  const [doomedUrl, survivorUrl] = server.urls as [string, string];
  const doomedPid = server.pids[1]!;
  const base = monotonicMicros();
  const live = spawnWorker();
  const storm = [spawnWorker(), spawnWorker()];
  const all = [live, ...storm];
  const pub = await openPublisher(server);
  let ticker: NodeJS.Timeout | null = null;
  try {
    const rooms = Math.ceil(stormClients / ROOM_SIZE);
    const opened = [
      ask(live, { cmd: 'open', role: 'live', url: survivorUrl, failoverUrl: survivorUrl, users: Array.from({ length: liveClients }, (_, i) => `live-${i}`), channels: Array(liveClients).fill('live'), secret: BENCH_TOKEN_SECRET, base }, 180_000),
      ...storm.map((w, k) => {
        const mine = Array.from({ length: stormClients }, (_, i) => i).filter((i) => i % storm.length === k);
        return ask(w, { cmd: 'open', role: 'storm', url: doomedUrl, failoverUrl: survivorUrl, users: mine.map((i) => `storm-${i}`), channels: mine.map((i) => `room-${i % rooms}`), secret: BENCH_TOKEN_SECRET, base }, 180_000);
      }),
    ];
    for (const m of await Promise.all(opened)) if (m.ev !== 'opened' || m.failed > 0) throw new Error(`clients failed to open: ${JSON.stringify(m).slice(0, 300)}`);
    // The live channel at LIVE_RATE, each room at 1 msg/s, spread over 10 ms ticks.
    let liveSeq = 0;
    let roomSeq = 0;
    let tick = 0;
    ticker = setInterval(() => {
      tick++;
      const now = nowMicros(base);
      for (let i = 0; i < LIVE_RATE / 100; i++) void pub.publish('live', makePayload(0, ++liveSeq, now, 100));
      for (let r = tick % 100; r < rooms; r += 100) void pub.publish(`room-${r}`, makePayload(1 + r, ++roomSeq, now, 100));
    }, 10);
    await sleep(1000);
    for (const w of all) w.child.send({ cmd: 'phase', phase: 'calm' } satisfies StormToWorker);
    await sleep(CALM_MS);
    // Kill node 1 and everything under it at once.
    const victims = processTree([doomedPid]).map((p) => p.pid);
    const survivors = server.pids.filter((p) => p !== doomedPid);
    const loadAverage = loadavg()[0]!;
    const cpu0 = sample(survivors);
    const t0 = performance.now();
    for (const pid of victims) process.kill(pid, 'SIGKILL');
    for (const w of all) w.child.send({ cmd: 'phase', phase: 'storm' } satisfies StormToWorker);
    while (storm.reduce((a, w) => a + w.recovered, 0) < stormClients && performance.now() - t0 < STORM_TIMEOUT_MS) await sleep(20);
    const allRecoveredMs = performance.now() - t0;
    const cpu1 = sample(survivors);
    for (const w of all) w.child.send({ cmd: 'phase', phase: 'after' } satisfies StormToWorker);
    await sleep(1000);
    clearInterval(ticker);
    ticker = null;
    const reports = (await Promise.all(all.map((w) => ask(w, { cmd: 'report' }, 30_000)))).map((m) => {
      if (m.ev !== 'report') throw new Error('storm worker: unexpected reply');
      return m;
    });
    const lat = (p: string): hdr.Histogram => hdr.decodeFromCompressedBase64(reports[0]!.latency[p]!);
    const recovered = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
    const subscribed = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
    for (const r of reports.slice(1)) {
      recovered.add(hdr.decodeFromCompressedBase64(r.recoveredAfter));
      subscribed.add(hdr.decodeFromCompressedBase64(r.subscribedAfter));
    }
    const calm = lat('calm');
    const during = lat('storm');
    const sum = (f: (r: (typeof reports)[number]) => number): number => reports.reduce((a, r) => a + f(r), 0);
    return {
      stormClients,
      liveClients,
      allRecoveredMs,
      recoveredP50Ms: recovered.getValueAtPercentile(50) / 1000,
      recoveredP99Ms: recovered.getValueAtPercentile(99) / 1000,
      subscribedP50Ms: subscribed.getValueAtPercentile(50) / 1000,
      subscribedP99Ms: subscribed.getValueAtPercentile(99) / 1000,
      cpuPerReconnectUs: (cpuBetween(cpu0, cpu1) / stormClients) * 1e6,
      calm: { p50: calm.getValueAtPercentile(50) / 1000, p99: calm.getValueAtPercentile(99) / 1000 },
      storm: { p50: during.getValueAtPercentile(50) / 1000, p99: during.getValueAtPercentile(99) / 1000 },
      p99Ratio: during.getValueAtPercentile(99) / Math.max(1, calm.getValueAtPercentile(99)),
      recoveredFalse: sum((r) => r.recoveredFalse),
      gaps: sum((r) => r.gaps),
      repeats: sum((r) => r.repeats),
      failedReconnects: sum((r) => r.failedReconnects),
      firstError: reports.map((r) => r.firstError).find((e) => e) ?? '',
      pending: sum((r) => r.pending),
      loadAverage,
    };
  } finally {
    if (ticker) clearInterval(ticker);
    await pub.close().catch(() => undefined);
    await Promise.all(all.map((w) => closeWorker(w.child, () => w.child.send({ cmd: 'close' } satisfies StormToWorker))));
    await server.stop();
  }
}

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
        `${r.cpuPerReconnectUs.toFixed(0)} µs server CPU each; live p99 calm ${r.calm.p99.toFixed(1)} ms, storm ${r.storm.p99.toFixed(1)} ms (${r.p99Ratio.toFixed(2)}x); ` +
        `recovered:false ${r.recoveredFalse}, holes ${r.gaps}, repeats ${r.repeats}, failed reconnects ${r.failedReconnects}${r.firstError ? ` (first: ${r.firstError})` : ''}, not recovered ${r.pending}; load average ${r.loadAverage.toFixed(1)}`,
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
    `| live p50 / p99 calm, ms | ${m((r) => r.calm.p50).toFixed(1)} / ${m((r) => r.calm.p99).toFixed(1)} | ${runs.map((r) => `${r.calm.p50.toFixed(1)} / ${r.calm.p99.toFixed(1)}`).join(', ')} |`,
    `| live p50 / p99 during the storm, ms | ${m((r) => r.storm.p50).toFixed(1)} / ${m((r) => r.storm.p99).toFixed(1)} | ${runs.map((r) => `${r.storm.p50.toFixed(1)} / ${r.storm.p99.toFixed(1)}`).join(', ')} |`,
    `| live p99 storm / calm | ${m((r) => r.p99Ratio).toFixed(2)}x | ${runs.map((r) => `${r.p99Ratio.toFixed(2)}x`).join(', ')} |`,
    `| recovered: false / holes / repeats / failed reconnects / not recovered | | ${runs.map((r) => `${r.recoveredFalse}/${r.gaps}/${r.repeats}/${r.failedReconnects}/${r.pending}`).join(', ')} |`,
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
