/**
 * Results as a markdown table with Tidings' ratios to each peer, a JSON file,
 * and simple SVG bar charts (hand-written SVG: no chart library needed for bars).
 */
import type { RunResult } from './scenario.js';

const PEERS = ['ws-naive', 'ws-batched', 'ws-merged', 'socketio', 'nats'];

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');
const mega = (n: number): string => (n === 0 ? '-' : `${(n / 1e6).toFixed(2)} M`);
const kilo = (n: number | undefined): string => (!n ? '-' : `${(n / 1e3).toFixed(1)} k`);

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median of every figure over repeats of the same scenario and server; loss and reordering: the worst. */
export function summarise(runs: RunResult[]): RunResult[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of runs) {
    const k = `${r.scenario}\0${r.server}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const m = (f: (r: RunResult) => number): number => median(g.map(f));
    const worst = (f: (r: RunResult) => number): number => Math.max(...g.map(f));
    return {
      ...g[0]!,
      published: m((r) => r.published),
      deliveries: m((r) => r.deliveries),
      seconds: m((r) => r.seconds),
      deliveriesPerSec: m((r) => r.deliveriesPerSec),
      serverCpuSec: m((r) => r.serverCpuSec),
      deliveriesPerCpuSec: m((r) => r.deliveriesPerCpuSec),
      publishedPerCpuSec: m((r) => r.publishedPerCpuSec ?? 0),
      ...(g[0]!.unacked !== undefined ? { unacked: worst((r) => r.unacked ?? 0), ackOffsetJumps: worst((r) => r.ackOffsetJumps ?? 0) } : {}),
      ...(g[0]!.historyMissing !== undefined ? { historyMissing: worst((r) => r.historyMissing ?? 0) } : {}),
      ...(g[0]!.deliveriesPerNodeCpuSec !== undefined
        ? {
            nodeCpuSec: m((r) => r.nodeCpuSec ?? 0),
            deliveriesPerNodeCpuSec: m((r) => r.deliveriesPerNodeCpuSec ?? 0),
            nodeCpuSecEach: (g[0]!.nodeCpuSecEach ?? []).map((_, i) => m((r) => r.nodeCpuSecEach?.[i] ?? 0)),
            directorCpuSec: m((r) => r.directorCpuSec ?? 0),
            directorCpuMicrosPerMessage: m((r) => r.directorCpuMicrosPerMessage ?? 0),
            nodeWritesPerDelivery: m((r) => r.nodeWritesPerDelivery ?? 0),
          }
        : {}),
      loss: worst((r) => r.loss),
      outOfOrder: worst((r) => r.outOfOrder),
      foreign: worst((r) => r.foreign),
      latencyMs: { p50: m((r) => r.latencyMs.p50), p99: m((r) => r.latencyMs.p99), p999: m((r) => r.latencyMs.p999), max: m((r) => r.latencyMs.max) },
      firstP50Ms: m((r) => r.firstP50Ms),
      rssMB: m((r) => r.rssMB),
      rssPerConnKB: m((r) => r.rssPerConnKB),
      cpuPerConnectUs: m((r) => r.cpuPerConnectUs),
      connectsPerSec: m((r) => r.connectsPerSec),
      connectMs: { p50: m((r) => r.connectMs.p50), p99: m((r) => r.connectMs.p99) },
      repeats: g.length,
    } as RunResult & { repeats: number };
  });
}

/** `a / b` of the same scenario, run by run (runs of one repetition pair up in order). */
function perRun(runs: RunResult[], scenario: string, a: string, b: string, f: (r: RunResult) => number): string {
  const as = runs.filter((r) => r.scenario === scenario && r.server === a);
  const bs = runs.filter((r) => r.scenario === scenario && r.server === b);
  if (as.length < 2 || as.length !== bs.length) return '';
  return ` (per run ${as.map((r, i) => fmt(f(r) / f(bs[i]!), 2)).join(' / ')})`;
}

/** Runs of every repetition (for per-run ratios) may be given beside the medians. */
export function markdownTable(results: RunResult[], runs: RunResult[] = []): string {
  const lines: string[] = [];
  const scenarios = [...new Set(results.map((r) => r.scenario))];
  for (const sc of scenarios) {
    const rows = results.filter((r) => r.scenario === sc);
    const first = rows[0]!;
    lines.push(`### ${sc}`, '');
    if (first.mode === 'idle' || first.mode === 'connect') {
      lines.push(
        `${first.connections} idle connections, one subscription each${first.authenticated ? ' (Tidings: each with its own JWT)' : ''}`,
        '',
        '| server | RSS MB | KB per connection | server CPU per connect+subscribe µs | connects/s | connect p50 ms | connect p99 ms |',
        '|---|---:|---:|---:|---:|---:|---:|',
      );
      for (const r of rows) lines.push(`| ${r.server} | ${fmt(r.rssMB)} | ${fmt(r.rssPerConnKB, 1)} | ${fmt(r.cpuPerConnectUs)} | ${fmt(r.connectsPerSec)} | ${fmt(r.connectMs.p50, 1)} | ${fmt(r.connectMs.p99, 1)} |`);
      const t = rows.find((r) => r.server.startsWith('tidings'));
      const peers = rows.filter((r) => !r.server.startsWith('tidings'));
      if (t && peers.length) lines.push('', `${t.server} / peer: ` + peers.map((p) => `${p.server} ${fmt(t.rssPerConnKB / p.rssPerConnKB, 2)}x memory, ${fmt(t.cpuPerConnectUs / p.cpuPerConnectUs, 2)}x CPU per connect`).join('; '));
      lines.push('');
      continue;
    }
    lines.push(
      `${first.connections} connections, ${first.subscriptions} subscriptions on ${first.channels} channel(s), ${first.payload} B payloads, ${first.mode}`,
      '',
      '| server | deliveries/s | deliveries per server CPU-s | messages per server CPU-s | server CPU-s | p50 ms | p99 ms | p99.9 ms | max ms | RSS MB | loss | out of order | unacked | history |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const r of rows) {
      const unacked = r.unacked === undefined ? '-' : `${r.unacked}${r.ackOffsetJumps ? ` (${r.ackOffsetJumps} offset jumps)` : ''}`;
      const history = r.historyMissing === undefined ? '-' : r.historyMissing === 0 ? 'complete' : `${r.historyMissing} channel(s) incomplete`;
      lines.push(
        `| ${r.server} | ${mega(r.deliveriesPerSec)} | ${mega(r.deliveriesPerCpuSec)} | ${kilo(r.publishedPerCpuSec)} | ${fmt(r.serverCpuSec, 2)} | ${fmt(r.latencyMs.p50, 2)} | ${fmt(r.latencyMs.p99, 2)} | ${fmt(r.latencyMs.p999, 2)} | ${fmt(r.latencyMs.max, 1)} | ${fmt(r.rssMB)} | ${r.loss} | ${r.outOfOrder + r.foreign} | ${unacked} | ${history} |`,
      );
    }
    // Each Tidings publish path against each peer.
    const perCpu = (r: RunResult): number => r.deliveriesPerCpuSec;
    for (const t of rows.filter((r) => r.server === 'tidings' || r.server === 'tidings-ws')) {
      const peers = PEERS.map((p) => [p, rows.find((r) => r.server === p)] as const).filter(([, r]) => r);
      if (peers.length) lines.push('', `${t.server} / peer: ` + peers.map(([p, r]) => `${p} ${fmt(t.deliveriesPerCpuSec / r!.deliveriesPerCpuSec, 2)}x per CPU-s${perRun(runs, sc, t.server, p, perCpu)}, p99 ${fmt(t.latencyMs.p99 / r!.latencyMs.p99, 2)}x`).join('; '));
    }
    // A cluster: the forwarder nodes' own cost per delivery (the director's, per message, left out).
    for (const r of rows) if (r.deliveriesPerNodeCpuSec !== undefined) lines.push('', clusterLine(r));
    // Scaling scenarios (`<family>-<n>n`): each against the family's 1-node run of the same bench run.
    const scale = /^(.*)-(\d+)n$/.exec(sc);
    if (scale && scale[2] !== '1') {
      for (const r of rows) {
        // The 1-node run's label names its node count (tidings-cluster-1): match the server kind without it.
        const one = results.find((x) => x.scenario === `${scale[1]}-1n` && withoutNodeCount(x.server) === withoutNodeCount(r.server));
        if (one?.deliveriesPerNodeCpuSec && r.deliveriesPerNodeCpuSec !== undefined) {
          lines.push(
            '',
            `${r.server} / 1 node (${one.scenario}): deliveries per node CPU-s ${fmt(r.deliveriesPerNodeCpuSec / one.deliveriesPerNodeCpuSec, 2)}x, director CPU per message ${fmt((r.directorCpuMicrosPerMessage ?? 0) / (one.directorCpuMicrosPerMessage || NaN), 2)}x, deliveries per server CPU-s ${fmt(r.deliveriesPerCpuSec / one.deliveriesPerCpuSec, 2)}x, p50 ${fmt(r.latencyMs.p50 / one.latencyMs.p50, 2)}x, p99 ${fmt(r.latencyMs.p99 / one.latencyMs.p99, 2)}x`,
          );
        }
      }
    }
    // CURVE's cost: the keyed variant against the plain one of the same scenario.
    for (const plain of rows.filter((r) => !r.server.endsWith('-curve'))) {
      const keyed = rows.find((r) => r.server === `${plain.server}-curve`);
      if (keyed) lines.push('', `${keyed.server} / ${plain.server}: ${fmt(keyed.deliveriesPerCpuSec / plain.deliveriesPerCpuSec, 2)}x per CPU-s, p50 ${fmt(keyed.latencyMs.p50 / plain.latencyMs.p50, 2)}x, p99 ${fmt(keyed.latencyMs.p99 / plain.latencyMs.p99, 2)}x`);
    }
    const firsts = rows.filter((r) => r.firstP50Ms > 0);
    if (firsts.length) lines.push('', `first delivery of each message, p50: ${firsts.map((r) => `${r.server} ${fmt(r.firstP50Ms, 2)} ms`).join(', ')}`);
    // A cluster scenario against the same scenario on one node, publish path by publish path.
    for (const c of sc.startsWith('cluster-') ? rows : []) {
      const base = c.server.replace(/-cluster(-curve)?$/, '$1');
      const single = results.find((r) => r.scenario === sc.slice('cluster-'.length) && r.server === base);
      if (!single) continue;
      const ratio = fmt(c.deliveriesPerCpuSec / single.deliveriesPerCpuSec, 2);
      const runsOf = (scenario: string, server: string): RunResult[] => runs.filter((r) => r.scenario === scenario && r.server === server);
      const [cr, sr] = [runsOf(sc, c.server), runsOf(single.scenario, base)];
      const each = cr.length > 1 && cr.length === sr.length ? ` (per run ${cr.map((r, i) => fmt(r.deliveriesPerCpuSec / sr[i]!.deliveriesPerCpuSec, 2)).join(' / ')})` : '';
      lines.push(
        '',
        `${c.server} - single node (${single.scenario}, ${base}): p50 ${fmt(c.latencyMs.p50 - single.latencyMs.p50, 2)} ms, p99 ${fmt(c.latencyMs.p99 - single.latencyMs.p99, 2)} ms, deliveries per CPU-s ${ratio}x${each}`,
      );
    }
    lines.push('');
  }
  return lines.join('\n');
}

const withoutNodeCount = (label: string): string => label.replace(/^tidings-cluster-\d+/, 'tidings-cluster');

/** Millions above a million, else thousands (fixed-rate cluster runs make tens of thousands of deliveries per CPU-s). */
const count = (n: number): string => (n >= 1e6 ? mega(n) : `${fmt(n / 1e3, 1)} k`);

/** A cluster's split: the nodes' deliveries per CPU-second, each node's CPU-s, the director's CPU per message. */
export function clusterLine(r: RunResult): string {
  const each = (r.nodeCpuSecEach ?? []).map((c) => fmt(c, 2)).join(' / ');
  return `${r.server}: ${count(r.deliveriesPerNodeCpuSec ?? 0)} deliveries per node CPU-s (nodes' CPU-s ${fmt(r.nodeCpuSec ?? 0, 2)}: ${each}; ${fmt(r.nodeWritesPerDelivery ?? 0, 2)} write calls per delivery); director ${fmt(r.directorCpuSec ?? 0, 3)} CPU-s, ${fmt(r.directorCpuMicrosPerMessage ?? 0, 1)} µs per message`;
}

const COLORS: Record<string, string> = { tidings: '#1f77b4', 'tidings-ws': '#ff7f0e', 'tidings-curve': '#aec7e8', 'tidings-cluster': '#17becf', 'tidings-ws-cluster': '#ffbb78', 'tidings-cluster-curve': '#9edae5', 'ws-naive': '#7f7f7f', 'ws-batched': '#2ca02c', 'ws-merged': '#98df8a', socketio: '#d62728', nats: '#9467bd' };

/** A grouped bar chart: one group per scenario, one bar per server. */
export function barChart(title: string, unit: string, results: RunResult[], value: (r: RunResult) => number): string {
  const scenarios = [...new Set(results.map((r) => r.scenario))];
  const servers = [...new Set(results.map((r) => r.server))];
  const max = Math.max(1e-9, ...results.map(value));
  const barW = 18;
  const groupW = servers.length * barW + 30;
  const width = 80 + scenarios.length * groupW;
  const height = 320;
  const plotH = 220;
  const top = 40;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 20 * Math.ceil(servers.length / 4)}" font-family="sans-serif" font-size="11">`,
    `<text x="10" y="20" font-size="14">${esc(title)} (${esc(unit)})</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4;
    out.push(`<line x1="60" x2="${width - 10}" y1="${y}" y2="${y}" stroke="#ddd"/><text x="55" y="${y + 4}" text-anchor="end">${esc(short((max * i) / 4))}</text>`);
  }
  scenarios.forEach((sc, gi) => {
    const gx = 70 + gi * groupW;
    servers.forEach((sv, si) => {
      const r = results.find((x) => x.scenario === sc && x.server === sv);
      if (!r) return;
      const h = (plotH * value(r)) / max;
      out.push(`<rect x="${gx + si * barW}" y="${top + plotH - h}" width="${barW - 2}" height="${h}" fill="${COLORS[sv] ?? '#999'}"><title>${esc(`${sv} ${sc}: ${short(value(r))}`)}</title></rect>`);
    });
    out.push(`<text x="${gx + (servers.length * barW) / 2}" y="${top + plotH + 16}" text-anchor="middle">${esc(sc)}</text>`);
  });
  servers.forEach((sv, si) => {
    const x = 70 + (si % 4) * 150;
    const y = height - 20 + 20 * Math.floor(si / 4);
    out.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${COLORS[sv] ?? '#999'}"/><text x="${x + 16}" y="${y}">${esc(sv)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function short(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(n < 10 ? 2 : 0);
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
