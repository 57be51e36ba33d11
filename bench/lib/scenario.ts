/**
 * One measured run of one workload against one running server: open the
 * subscribers, warm up, publish (as fast as the credit window allows, or at a
 * fixed rate), wait until every subscriber has every message, and report
 * throughput, server CPU, loss, reordering, latency and memory.
 */
import { Generator } from './generator.js';
import { openPublisher } from './publishers.js';
import { cpuBetween, sample, threadsBetween, writesBetween, type Usage } from './proc-stats.js';
import { makePayload, monotonicMicros, nowMicros } from './payload.js';
import type { RunningServer } from './servers.js';
import { isTidings } from './protocols.js';
import { historyHolds, streamPositions } from './ws-publisher.js';

export interface Workload {
  scenario: string;
  /** Channel indices each connection subscribes to. */
  subscriptions: number[][];
  channels: number;
  payload: number;
  /**
   * saturate / rate: publish and measure delivery; idle: open the subscribers
   * and read memory; connect: open the subscribers and measure the server CPU
   * each connect+subscribe took.
   */
  mode: 'saturate' | 'rate' | 'idle' | 'connect';
  /** Messages per second over all channels, for mode 'rate'. */
  rate?: number;
  durationMs: number;
  warmupMs: number;
  processes: number;
  /** Spread client source addresses over 127.0.0.2-9 (past the ephemeral port range of one address). */
  manySourceAddresses?: boolean;
  /**
   * Saturation's credit window in messages: the slowest subscriber may be at
   * most this many messages behind, and an acknowledged publisher may have at
   * most this many publishes unanswered. Default: about 5 MB of queued data.
   */
  window?: number;
  /** Tidings subscribers connect without a token (by default each has its own JWT). */
  anonymous?: boolean;
  /** Handshakes in flight per generator process while opening (default 100). */
  openConcurrency?: number;
}

export interface RunResult {
  scenario: string;
  server: string;
  connections: number;
  subscriptions: number;
  channels: number;
  payload: number;
  mode: string;
  published: number;
  deliveries: number;
  seconds: number;
  deliveriesPerSec: number;
  serverCpuSec: number;
  deliveriesPerCpuSec: number;
  /** Messages published per server CPU-second (the small-rooms figure). */
  publishedPerCpuSec: number;
  /** Acknowledged publishers: publishes not acknowledged, or answered with an error (must be 0). */
  unacked?: number;
  /** Acknowledged publishers: acknowledgements whose offset did not follow the channel's previous one. */
  ackOffsetJumps?: number;
  /** Tidings: channels whose history did not hold every message of the measured phase (must be 0). */
  historyMissing?: number;
  /** The measured phase on CLOCK_MONOTONIC, in microseconds (profiles are cut to it). */
  phase?: { fromMicros: number; toMicros: number };
  /** A cluster: CPU-s of the forwarder nodes alone (director left out), and deliveries per such CPU-second. */
  nodeCpuSec?: number;
  deliveriesPerNodeCpuSec?: number;
  /** A cluster: CPU-s of each forwarder node (its forwarder process and edge workers), in node order. */
  nodeCpuSecEach?: number[];
  /** A cluster: the director's CPU-s, and its CPU microseconds per published message (its work is per message and per node, not per delivery). */
  directorCpuSec?: number;
  directorCpuMicrosPerMessage?: number;
  /** A cluster: write system calls of the nodes per delivery (below 1 when a socket write carries several messages). */
  nodeWritesPerDelivery?: number;
  loss: number;
  outOfOrder: number;
  foreign: number;
  latencyMs: { p50: number; p99: number; p999: number; max: number };
  /** Per message, the latency of its first delivery (rate mode), ms. */
  firstP50Ms: number;
  rssMB: number;
  rssPerConnKB: number;
  /** Whether Tidings subscribers had their own tokens. */
  authenticated: boolean;
  /** Server CPU per connect+subscribe (connect mode), µs. */
  cpuPerConnectUs: number;
  /** Connects+subscribes per second while opening, and each one's time from socket open to subscribed (ms). */
  connectsPerSec: number;
  connectMs: { p50: number; p99: number };
}

export function channelName(i: number): string {
  return `bench-${i}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** TIDINGS_BENCH_THREADS=1: print where the measured phase's server CPU went, per process and kind of thread. */
const SHOW_THREADS = process.env['TIDINGS_BENCH_THREADS'] === '1';

function printThreads(server: RunningServer, before: Usage, after: Usage, seconds: number): void {
  // The roots are the nodes in start order (a cluster's director first); a process below a root is an edge worker.
  const rootName = (root: number): string => (server.pids.length === 1 ? 'node' : root === server.pids[0] ? 'director' : `node${server.pids.indexOf(root)}`);
  const rows = threadsBetween(before, after, (pid, root) => (pid === root ? `${rootName(root)} primary` : `${rootName(root)} edge ${pid}`));
  for (const r of rows.sort((a, b) => a.process.localeCompare(b.process))) {
    const kinds = r.threads.filter(([, sec]) => sec / seconds >= 0.002).map(([k, sec, wakes]) => `${k} ${((sec / seconds) * 1000).toFixed(0)} ms, ${(wakes / seconds).toFixed(0)} wakes`);
    const writes = (after.writes.get(r.pid) ?? 0) - (before.writes.get(r.pid) ?? 0);
    console.log(`    ${r.process}: ${((r.sec / seconds) * 1000).toFixed(0)} ms of CPU per s (${kinds.join('; ')}; per s), ${(writes / seconds).toFixed(0)} write calls per s`);
  }
}

function progressLine(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
  else process.stderr.write(`${text}\n`);
}

export async function runWorkload(server: RunningServer, w: Workload): Promise<RunResult> {
  const gen = new Generator();
  const base = monotonicMicros();
  const expected: number[] = new Array<number>(w.channels).fill(0);
  const fanout: number[] = new Array<number>(w.channels).fill(0);
  for (const list of w.subscriptions) for (const c of list) fanout[c]!++;
  const totalSubs = fanout.reduce((a, b) => a + b, 0);
  const before = sample(server.pids);
  const authenticated = server.tokenSecret !== undefined && !w.anonymous;
  try {
    const targets = w.subscriptions.map((list, i) => ({
      kind: server.kind,
      url: server.urls[i % server.urls.length]!,
      channels: list.map(channelName),
      ...(w.manySourceAddresses ? { localAddress: `127.0.0.${2 + (i % 8)}` } : {}),
      ...(authenticated ? { user: `bench-user-${i}` } : {}),
    }));
    await gen.prepare(targets, w.subscriptions, w.processes, base, authenticated ? server.tokenSecret : undefined);
    const opening = sample(server.pids, SHOW_THREADS);
    const openStart = performance.now();
    // At least 100 connects per second, however loaded the machine: 50 000 connections may take minutes.
    const connectTimes = await gen.open(Math.max(60_000, w.subscriptions.length * 10), w.openConcurrency ?? 100);
    const openSeconds = (performance.now() - openStart) / 1000;
    const opened = sample(server.pids, SHOW_THREADS);
    if (SHOW_THREADS) printThreads(server, opening, opened, openSeconds);
    const connectFigures = {
      cpuPerConnectUs: (cpuBetween(opening, opened) / w.subscriptions.length) * 1e6,
      connectsPerSec: w.subscriptions.length / openSeconds,
      connectMs: { p50: connectTimes.getValueAtPercentile(50) / 1000, p99: connectTimes.getValueAtPercentile(99) / 1000 },
    };
    if (w.mode === 'idle' || w.mode === 'connect') {
      if (w.mode === 'idle') await sleep(2000);
      const after = sample(server.pids);
      const rssPerConnKB = (after.rss - before.rss) / 1024 / w.subscriptions.length;
      return { ...blank(server, w, totalSubs, after.rss, rssPerConnKB, authenticated), ...connectFigures };
    }
    const pub = await openPublisher(server);
    let round = 0;
    const subsPerChannel = totalSubs / w.channels;
    const windowRounds = w.window
      ? Math.max(1, Math.floor(w.window / w.channels))
      : Math.max(w.channels > 1 ? 2 : 8, Math.min(500, Math.floor(Math.min(50_000 / w.channels, 5e6 / (w.channels * subsPerChannel * w.payload)))));
    const ackWindow = w.window ?? windowRounds * w.channels;
    const publishFor = async (ms: number): Promise<void> => {
      const start = Date.now();
      const end = start + ms;
      let sent = 0;
      while (Date.now() < end) {
        if (w.mode === 'saturate') {
          if (round - gen.minSeq >= windowRounds || (pub.inFlight ?? 0) >= ackWindow) {
            await sleep(1);
            continue;
          }
        } else {
          const due = Math.floor(((Date.now() - start) / 1000) * (w.rate ?? 100));
          if (sent >= due) {
            await sleep(1);
            continue;
          }
        }
        round++;
        const t = nowMicros(base);
        for (let c = 0; c < w.channels; c++) {
          const r = pub.publish(channelName(c), makePayload(c, round, t, w.payload));
          if (r) await r;
          expected[c]!++;
          if (++sent % 512 === 0) await new Promise((res) => setImmediate(res));
        }
      }
    };
    const drain = async (target: () => number, timeoutMs: number): Promise<boolean> => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (gen.received >= target()) return true;
        await sleep(5);
      }
      return false;
    };
    // Warm-up: JIT, buffers, subscriptions along the whole path; then drained, not measured.
    gen.start();
    await publishFor(w.warmupMs);
    const warmExpected = totalExpected(expected, fanout);
    await drain(() => warmExpected, 15_000);
    await sleep(50);
    const names = Array.from({ length: w.channels }, (_, c) => channelName(c));
    const checkHistory = isTidings(server.kind) && server.wsPublishTo !== undefined;
    const positions = checkHistory ? await streamPositions(server.wsPublishTo!, names) : null;
    expected.fill(0);
    gen.start(20, w.mode === 'rate');
    const cpu0 = sample(server.pids, SHOW_THREADS);
    const t0 = performance.now();
    const phaseFrom = monotonicMicros();
    const ticker = setInterval(() => {
      const s = (performance.now() - t0) / 1000;
      progressLine(`  ${server.label} ${w.scenario}: ${s.toFixed(1)} s, ${round} rounds, ${(gen.received / s / 1e6).toFixed(2)} M deliveries/s`);
    }, 1000);
    await publishFor(w.durationMs);
    const want = totalExpected(expected, fanout);
    await drain(() => want, 20_000);
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = sample(server.pids, SHOW_THREADS);
    const phaseTo = monotonicMicros();
    clearInterval(ticker);
    // Every publish answered (acknowledged publishers), within the drain's time.
    const ackDeadline = Date.now() + 20_000;
    while ((pub.inFlight ?? 0) > 0 && Date.now() < ackDeadline) await sleep(5);
    const acks1 = pub.acks?.();
    if (acks1 && acks1.errors > 0) console.log(`  ${server.label}: ${acks1.errors} publishes refused, first: ${acks1.firstError}`);
    await pub.close();
    const historyMissing = positions ? (await historyHolds(server.wsPublishTo!, positions, new Map(names.map((n, c) => [n, expected[c]!])))).length : undefined;
    const r = await gen.finish(expected);
    const serverCpuSec = cpuBetween(cpu0, cpu1);
    const published = expected.reduce((a, b) => a + b, 0);
    if (SHOW_THREADS) printThreads(server, cpu0, cpu1, seconds);
    const cluster = server.nodePids ? clusterCpu(cpu0, cpu1, server.pids, server.nodePids, r.received, published) : {};
    const h = r.histogram;
    const res: RunResult = {
      scenario: w.scenario,
      server: server.label,
      connections: w.subscriptions.length,
      subscriptions: totalSubs,
      channels: w.channels,
      payload: w.payload,
      mode: w.mode === 'rate' ? `${w.rate} msg/s` : w.mode,
      published,
      deliveries: r.received,
      seconds,
      deliveriesPerSec: r.received / seconds,
      serverCpuSec,
      deliveriesPerCpuSec: serverCpuSec > 0 ? r.received / serverCpuSec : 0,
      publishedPerCpuSec: serverCpuSec > 0 ? published / serverCpuSec : 0,
      ...(acks1 ? { unacked: acks1.sent - acks1.acked, ackOffsetJumps: acks1.offsetJumps } : {}),
      ...(historyMissing !== undefined ? { historyMissing } : {}),
      phase: { fromMicros: phaseFrom, toMicros: phaseTo },
      ...cluster,
      loss: r.loss,
      outOfOrder: r.outOfOrder,
      foreign: r.foreign,
      latencyMs: {
        p50: h.getValueAtPercentile(50) / 1000,
        p99: h.getValueAtPercentile(99) / 1000,
        p999: h.getValueAtPercentile(99.9) / 1000,
        max: h.maxValue / 1000,
      },
      firstP50Ms: r.first.totalCount > 0 ? r.first.getValueAtPercentile(50) / 1000 : 0,
      rssMB: cpu1.rss / 2 ** 20,
      rssPerConnKB: 0,
      authenticated,
      ...connectFigures,
    };
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    return res;
  } finally {
    await gen.close();
  }
}

/** A cluster's CPU split between its forwarder nodes (each with its edge workers) and the director, from the same two samples. */
function clusterCpu(cpu0: Usage, cpu1: Usage, pids: number[], nodePids: number[], deliveries: number, published: number): Partial<RunResult> {
  const nodeCpuSecEach = nodePids.map((pid) => cpuBetween(cpu0, cpu1, [pid]));
  const nodeCpuSec = nodeCpuSecEach.reduce((a, b) => a + b, 0);
  const directorCpuSec = cpuBetween(cpu0, cpu1, pids.filter((p) => !nodePids.includes(p)));
  return {
    nodeCpuSec,
    deliveriesPerNodeCpuSec: nodeCpuSec > 0 ? deliveries / nodeCpuSec : 0,
    nodeCpuSecEach,
    directorCpuSec,
    directorCpuMicrosPerMessage: published > 0 ? (directorCpuSec * 1e6) / published : 0,
    nodeWritesPerDelivery: deliveries > 0 ? writesBetween(cpu0, cpu1, nodePids) / deliveries : 0,
  };
}

function totalExpected(expected: number[], fanout: number[]): number {
  let n = 0;
  for (let c = 0; c < expected.length; c++) n += expected[c]! * fanout[c]!;
  return n;
}

function blank(server: RunningServer, w: Workload, subs: number, rss: number, rssPerConnKB: number, authenticated: boolean): RunResult {
  return {
    scenario: w.scenario,
    server: server.label,
    connections: w.subscriptions.length,
    subscriptions: subs,
    channels: w.channels,
    payload: 0,
    mode: w.mode,
    published: 0,
    deliveries: 0,
    seconds: 0,
    deliveriesPerSec: 0,
    serverCpuSec: 0,
    deliveriesPerCpuSec: 0,
    publishedPerCpuSec: 0,
    loss: 0,
    outOfOrder: 0,
    foreign: 0,
    latencyMs: { p50: 0, p99: 0, p999: 0, max: 0 },
    firstP50Ms: 0,
    rssMB: rss / 2 ** 20,
    rssPerConnKB,
    authenticated,
    cpuPerConnectUs: 0,
    connectsPerSec: 0,
    connectMs: { p50: 0, p99: 0 },
  };
}

/** Every connection on channel 0. */
export function oneChannel(connections: number): number[][] {
  return Array.from({ length: connections }, () => [0]);
}

/** `channels` channels with `perChannel` subscribers each, every connection in exactly one channel. */
export function roomsOf(channels: number, perChannel: number): number[][] {
  return Array.from({ length: channels * perChannel }, (_, i) => [i % channels]);
}

/** Channel j has (j % 10) + 1 subscribers, spread over `connections` connections. */
export function manyChannels(channels: number, connections: number): number[][] {
  const out: number[][] = Array.from({ length: connections }, () => []);
  let k = 0;
  for (let j = 0; j < channels; j++) for (let s = 0; s <= j % 10; s++) out[k++ % connections]!.push(j);
  return out;
}
