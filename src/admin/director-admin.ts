/**
 * The director's side of the admin page: edges report their numbers every
 * few seconds (`admin_report`), and `admin_overview` answers with the whole
 * cluster as the page shows it: nodes and their health, connections per node,
 * channels with subscribers and message rates, live rates. Rates are the
 * difference between two samples (edge reports; channel offsets sampled when
 * the overview is asked for), so nothing is counted on the hot path.
 */
import { hostname } from 'node:os';
import type { ClusterState } from '../director/cluster-state.js';
import { str, type Body } from '../director/body.js';

/** An edge whose report is older than this is late; twice this, it is gone from the page. */
export const REPORT_INTERVAL_MS = 2000;
const LATE_MS = REPORT_INTERVAL_MS * 3;
const GONE_MS = REPORT_INTERVAL_MS * 15;
const MAX_EDGES = 10_000;
/** Channels listed in one overview (the busiest first); the total is given beside. */
const MAX_CHANNELS_LISTED = 200;

interface EdgeReport {
  edge: string;
  node: string;
  pid: number;
  started: number;
  connections: number;
  subscriptions: number;
  channels: number;
  delivered: number;
  sentBytes: number;
  at: number;
  /** Deliveries per second between this report and the one before. */
  deliveredRate: number;
  sentRate: number;
}

function num(b: Body, name: string): number {
  const v = b[name];
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}

export function installDirectorAdmin(state: ClusterState): { stop(): void } {
  const director = state.director;
  const edges = new Map<string, EdgeReport>();
  const started = Date.now();
  const nodeName = director.config.node_id ?? `${hostname()}-${process.pid}`;
  /** Last offsets seen per channel (epoch-qualified), for channel rates. */
  let sample = { at: Date.now(), offsets: new Map<string, { epoch: string; offset: number }>() };
  let rates = new Map<string, number>();
  let publishedRate = 0;

  director.handlers.register('admin_report', (b) => {
    const edge = str(b, 'edge');
    const now = Date.now();
    const prev = edges.get(edge);
    if (!prev && edges.size >= MAX_EDGES) return {};
    const r: EdgeReport = {
      edge,
      node: edge.includes('/') ? edge.slice(0, edge.lastIndexOf('/')) : edge,
      pid: num(b, 'pid'),
      started: num(b, 'started'),
      connections: num(b, 'connections'),
      subscriptions: num(b, 'subscriptions'),
      channels: num(b, 'channels'),
      delivered: num(b, 'delivered'),
      sentBytes: num(b, 'sent_bytes'),
      at: now,
      deliveredRate: 0,
      sentRate: 0,
    };
    if (prev && prev.pid === r.pid && now > prev.at) {
      const dt = (now - prev.at) / 1000;
      r.deliveredRate = Math.max(0, (r.delivered - prev.delivered) / dt);
      r.sentRate = Math.max(0, (r.sentBytes - prev.sentBytes) / dt);
    }
    edges.set(edge, r);
    return {};
  });

  /** Channel rates from the offsets since the previous sample (at least a second apart). */
  const resample = (now: number): void => {
    const dt = (now - sample.at) / 1000;
    if (dt < 1) return;
    const next = new Map<string, { epoch: string; offset: number }>();
    const nextRates = new Map<string, number>();
    let total = 0;
    for (const name of director.channels.names()) {
      const c = director.channels.get(name)!;
      next.set(name, { epoch: c.epoch, offset: c.offset });
      const before = sample.offsets.get(name);
      const delta = before && before.epoch === c.epoch ? c.offset - before.offset : c.offset;
      if (delta > 0) {
        nextRates.set(name, delta / dt);
        total += delta;
      }
    }
    sample = { at: now, offsets: next };
    rates = nextRates;
    publishedRate = total / dt;
  };

  director.handlers.register('admin_overview', () => {
    const now = Date.now();
    resample(now);
    for (const [id, r] of edges) if (now - r.at > GONE_MS) edges.delete(id);
    const nodes = new Map<string, { node: string; health: string; connections: number; subscriptions: number; delivered_rate: number; sent_bytes_rate: number; edges: unknown[] }>();
    for (const r of [...edges.values()].sort((a, b) => a.edge.localeCompare(b.edge))) {
      const age = now - r.at;
      const health = age <= LATE_MS ? 'ok' : 'late';
      let n = nodes.get(r.node);
      if (!n) nodes.set(r.node, (n = { node: r.node, health: 'ok', connections: 0, subscriptions: 0, delivered_rate: 0, sent_bytes_rate: 0, edges: [] }));
      if (health !== 'ok') n.health = 'late';
      n.connections += r.connections;
      n.subscriptions += r.subscriptions;
      n.delivered_rate += r.deliveredRate;
      n.sent_bytes_rate += r.sentRate;
      n.edges.push({ edge: r.edge, health, pid: r.pid, uptime_s: Math.round((now - r.started) / 1000), connections: r.connections, subscriptions: r.subscriptions, channels: r.channels, delivered_rate: round(r.deliveredRate), report_age_ms: age });
    }
    const names = new Set<string>([...director.channels.names(), ...state.presence.channelNames()]);
    const channels = [...names].map((name) => {
      const c = director.channels.get(name);
      return {
        channel: name,
        subscribers: state.presence.connectionsIn(name).length,
        users: state.presence.stats(name).users,
        offset: c?.offset ?? 0,
        rate: round(rates.get(name) ?? 0),
        history: c?.history.length ?? 0,
      };
    });
    channels.sort((a, b) => b.subscribers - a.subscribers || b.rate - a.rate || a.channel.localeCompare(b.channel));
    const nodeList = [...nodes.values()].map((n) => ({ ...n, delivered_rate: round(n.delivered_rate), sent_bytes_rate: Math.round(n.sent_bytes_rate) }));
    return {
      time: now,
      director: { node: nodeName, uptime_s: Math.round((now - started) / 1000), channels: director.channels.size, presence_connections: state.presence.conns.size },
      totals: {
        nodes: nodeList.length,
        edges: edges.size,
        connections: nodeList.reduce((s, n) => s + n.connections, 0),
        subscriptions: nodeList.reduce((s, n) => s + n.subscriptions, 0),
        published_rate: round(publishedRate),
        delivered_rate: round(nodeList.reduce((s, n) => s + n.delivered_rate, 0)),
      },
      nodes: nodeList,
      channel_count: channels.length,
      channels: channels.slice(0, MAX_CHANNELS_LISTED),
    };
  });

  return { stop: () => edges.clear() };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
