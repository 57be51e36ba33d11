/**
 * One reconnect storm (bench/storm.ts runs it and reports; the storm smoke
 * test runs a small one): a director node (no edge) and two forwarder nodes,
 * one edge each. `liveClients` sit on node 2, subscribed to one channel that
 * gets 100 msg/s of 100 bytes; `stormClients` sit on node 1, 100 per room,
 * each room 1 msg/s. Every client has its own JWT. After a calm phase node 1
 * is killed (SIGKILL, its whole process tree); its clients reconnect to node
 * 2 after the SDK's first retry delay and recover from their last message
 * (bench/lib/storm-worker.ts).
 */
import { fork } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { startServer, BENCH_TOKEN_SECRET } from './servers.js';
import { openPublisher } from './publishers.js';
import { cpuBetween, processTree, sample, tcpListenCounters } from './proc-stats.js';
import { makePayload, monotonicMicros, nowMicros } from './payload.js';
import type { StormFromWorker, StormToWorker } from './storm-worker.js';
import { closeWorker } from './ipc.js';

const ROOM_SIZE = 100;
const LIVE_RATE = 100;
const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'storm-worker.js');

export interface StormOptions {
  stormClients: number;
  liveClients: number;
  /** The calm phase before the kill, ms. */
  calmMs: number;
  /** How long the storm clients may take to recover before the run ends without them, ms. */
  timeoutMs: number;
  /** Run the servers with --cpu-prof into this directory. */
  profileDir?: string;
}

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
  /**
   * The same less what the surviving servers spent at their calm-phase rate over the storm's length (the
   * live traffic goes on meanwhile): what the reconnects themselves cost, µs each.
   */
  extraCpuPerReconnectUs: number;
  /**
   * The kernel's listen-queue overflows and SYN retransmissions from the kill until all recovered (the whole
   * machine's counters): connections arriving faster than the edge takes them wait for TCP's retransmit
   * timers (1, 3, 7 s ...), and a handshake the kernel gives up on is reset (a failed reconnect).
   */
  listenOverflows: number;
  synRetransmits: number;
  calm: { p50: number; p99: number };
  storm: { p50: number; p99: number };
  p99Ratio: number;
  recoveredFalse: number;
  gaps: number;
  repeats: number;
  /** Reconnect attempts that failed (reset by the kernel, refused, timed out); each was tried again. */
  failedReconnects: number;
  /** Live clients' deliveries counted in the storm phase (latency samples). */
  stormDeliveries: number;
  /** The first reason a reconnect failed. */
  firstError: string;
  pending: number;
  /** The machine's 1-minute load average at the kill (a shared machine). */
  loadAverage: number;
}

export async function runStorm(opts: StormOptions): Promise<StormResult> {
  const { stormClients, liveClients, profileDir } = opts;
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
    const survivors = server.pids.filter((p) => p !== doomedPid);
    const calm0 = sample(survivors);
    const calmT0 = performance.now();
    await sleep(opts.calmMs);
    // Kill node 1 and everything under it at once.
    const victims = processTree([doomedPid]).map((p) => p.pid);
    const loadAverage = loadavg()[0]!;
    const cpu0 = sample(survivors);
    const calmCpuPerMs = cpuBetween(calm0, cpu0) / (performance.now() - calmT0);
    const net0 = tcpListenCounters();
    const t0 = performance.now();
    for (const pid of victims) process.kill(pid, 'SIGKILL');
    for (const w of all) w.child.send({ cmd: 'phase', phase: 'storm' } satisfies StormToWorker);
    while (storm.reduce((a, w) => a + w.recovered, 0) < stormClients && performance.now() - t0 < opts.timeoutMs) await sleep(20);
    const allRecoveredMs = performance.now() - t0;
    const cpu1 = sample(survivors);
    const net1 = tcpListenCounters();
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
      extraCpuPerReconnectUs: ((cpuBetween(cpu0, cpu1) - calmCpuPerMs * allRecoveredMs) / stormClients) * 1e6,
      listenOverflows: net1.listenOverflows - net0.listenOverflows,
      synRetransmits: net1.synRetransmits - net0.synRetransmits,
      calm: { p50: calm.getValueAtPercentile(50) / 1000, p99: calm.getValueAtPercentile(99) / 1000 },
      storm: { p50: during.getValueAtPercentile(50) / 1000, p99: during.getValueAtPercentile(99) / 1000 },
      stormDeliveries: during.totalCount,
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

