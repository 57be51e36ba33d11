/**
 * Starts the servers under test as real processes on free loopback ports and
 * stops them by PID: Tidings (single node or director + forwarder nodes, from
 * dist/src/cli/main.js) and the peers (bench/peers, nats-server).
 */
import { MAIN_PROCESS_ENV, MAIN_PROCESS_NODE_ARGS } from '../../src/node/main-process.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { curveKeyPair } from 'zeromq';
import type { ServerKind } from './protocols.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/bench/lib -> dist/src/cli/main.js */
const CLI = join(here, '..', '..', 'src', 'cli', 'main.js');
const PEERS = join(here, '..', 'peers');
const HOST = '127.0.0.1';
/** The token secret of the bench's Tidings nodes: publishers over the websocket sign their token with it. */
export const BENCH_TOKEN_SECRET = 'bench-token-secret-0123456789abcdef0123456789';
/**
 * History on, large enough to keep every message of a run, so a run can check
 * that every message is in history (the largest history_size allowed).
 */
const BENCH_HISTORY_SIZE = '1000000';
/**
 * Limits a saturated run would otherwise reach by design (issue 9): history
 * bytes (every message of the measured phase must stay in history for the
 * bench's check) and commands in flight per connection (the websocket
 * publisher keeps up to the credit window, 2 000 publishes, unanswered, as a
 * backend publishing over a websocket would be configured to).
 */
const BENCH_LIMITS = {
  TIDINGS_HISTORY_CHANNEL_BYTES: String(2 ** 30),
  TIDINGS_HISTORY_TOTAL_BYTES: String(2 ** 32),
  TIDINGS_CLIENT_MAX_INFLIGHT: '20000',
};

export interface ServerOptions {
  /** Edge processes per node (Tidings). */
  workers?: number;
  /**
   * Tidings as a cluster: true = a director node without edges and two
   * forwarder nodes; 'pair' = a director node with its edge plus one
   * forwarder node, subscribers on both, publishers at the forwarder node.
   */
  cluster?: boolean | 'pair';
  /** Forwarder nodes of the cluster (default 2). */
  nodes?: number;
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=...'] for profiling. */
  execArgv?: string[];
  /** CURVE keys on every ZeroMQ link (Tidings): a pair per node, one for the publisher. */
  curve?: boolean;
}

export interface RunningServer {
  kind: ServerKind;
  label: string;
  /** Websocket URLs; subscribers are spread over them. */
  urls: string[];
  /** Where publishers go: a ZeroMQ publisher address, a ws URL, or host:port for NATS. */
  publishTo: string;
  /** Tidings: the websocket URL a `tidings-ws` publisher (and the history check) connects to. */
  wsPublishTo?: string;
  /** The publisher's CURVE keys (Tidings with curve). */
  publisherCurve?: { secretKey: string; serverKey: string };
  /** Tidings: the nodes' token secret, with which the generator signs each subscriber's own token. */
  tokenSecret?: string;
  pids: number[];
  /** A cluster's forwarder nodes (each with its edge workers), without the director: for deliveries per node CPU-second. */
  nodePids?: number[];
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const a = srv.address();
      const p = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(p));
    });
  });
}

class Proc {
  private out = '';
  readonly exited: Promise<void>;
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const keep = (d: Buffer): void => {
      this.out = (this.out + d.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((r) => child.once('exit', () => r()));
  }

  /** Until the output shows `pattern` (`times` times: give a /g pattern). */
  async waitFor(pattern: RegExp, timeoutMs = 60_000, times = 1): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (times === 1 ? pattern.test(this.out) : (this.out.match(pattern)?.length ?? 0) >= times) return;
      if (this.child.exitCode !== null) throw new Error(`${this.name} exited (${this.child.exitCode}):\n${this.out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${this.name}: no ${pattern} within ${timeoutMs} ms:\n${this.out.slice(-2000)}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

/**
 * Variables of the bench's own environment that reach Tidings nodes, for
 * experiments: name here -> name in the node (TIDINGS_BENCH_NODE_OPTIONS
 * becomes the node's NODE_OPTIONS, e.g. "--max-semi-space-size=1").
 */
const PASSED_THROUGH: Record<string, string> = {
  NODE_CLUSTER_SCHED_POLICY: 'NODE_CLUSTER_SCHED_POLICY',
  TIDINGS_WRITE_COALESCE_MS: 'TIDINGS_WRITE_COALESCE_MS',
  TIDINGS_OVERLOAD_LAG_MS: 'TIDINGS_OVERLOAD_LAG_MS',
  TIDINGS_WORKER_SEMI_SPACE_MB: 'TIDINGS_WORKER_SEMI_SPACE_MB',
  TIDINGS_BENCH_NODE_OPTIONS: 'NODE_OPTIONS',
};

function passedThrough(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [from, to] of Object.entries(PASSED_THROUGH)) {
    const v = process.env[from];
    if (v) out[to] = v;
  }
  return out;
}

/**
 * Node's flags for a Tidings node's main process: as the image and `npm start` launch it
 * (src/node/main-process.ts), or TIDINGS_BENCH_MAIN_NODE_ARGS ("" for V8's defaults) to compare.
 */
export function mainNodeArgs(): string[] {
  const own = process.env['TIDINGS_BENCH_MAIN_NODE_ARGS'];
  return own === undefined ? [...MAIN_PROCESS_NODE_ARGS] : own.split(' ').filter((a) => a !== '');
}

/**
 * The environment of a Tidings node's main process: as the image and `npm start` launch it
 * (MAIN_PROCESS_ENV), or TIDINGS_BENCH_MAIN_ENV ("" for none, else "NAME=value ...") to compare.
 */
export function mainNodeEnv(): Record<string, string> {
  const own = process.env['TIDINGS_BENCH_MAIN_ENV'];
  if (own === undefined) return { ...MAIN_PROCESS_ENV };
  return Object.fromEntries(own.split(' ').filter((a) => a.includes('=')).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
}

function tidingsNode(name: string, env: Record<string, string>, execArgv: string[]): Proc {
  const child = spawn(process.execPath, [...mainNodeArgs(), ...execArgv, CLI, 'serve'], {
    env: { PATH: process.env['PATH'] ?? '', ...mainNodeEnv(), ...passedThrough(), TIDINGS_LOG_LEVEL: 'info', TIDINGS_ALLOW_ANONYMOUS: 'true', TIDINGS_TOKEN_SECRET: BENCH_TOKEN_SECRET, TIDINGS_HISTORY_SIZE: BENCH_HISTORY_SIZE, ...BENCH_LIMITS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Proc(name, child);
}

async function addresses(): Promise<{ port: number; sub: string; pub: string; cmd: string }> {
  const [port, sub, pub, cmd] = [await freePort(), await freePort(), await freePort(), await freePort()];
  return { port, sub: `tcp://${HOST}:${sub}`, pub: `tcp://${HOST}:${pub}`, cmd: `tcp://${HOST}:${cmd}` };
}

async function startTidings(kind: ServerKind, opts: ServerOptions): Promise<RunningServer> {
  const workers = String(opts.workers ?? 1);
  const execArgv = opts.execArgv ?? [];
  const common = { TIDINGS_MAX_CONNECTIONS: '1000000', TIDINGS_ZMQ_HIGH_WATER_MARK: '1000000' };
  const suffix = opts.curve ? '-curve' : '';
  // With curve: one pair for the director, one per forwarder node, one for the publisher.
  const directorKeys = curveKeyPair();
  const nodeKeys = Array.from({ length: opts.nodes ?? 2 }, () => curveKeyPair());
  const workerKeys = curveKeyPair();
  const curveEnv = (own: { secretKey: string }, extra: Record<string, string>): Record<string, string> =>
    opts.curve ? { TIDINGS_CURVE_SECRET_KEY: own.secretKey, TIDINGS_CURVE_WORKER_KEYS: workerKeys.publicKey, ...extra } : {};
  const publisherCurve = opts.curve ? { publisherCurve: { secretKey: workerKeys.secretKey, serverKey: directorKeys.publicKey } } : {};
  if (!opts.cluster) {
    const a = await addresses();
    const p = tidingsNode('tidings', { ...common, ...curveEnv(directorKeys, {}), TIDINGS_SERVER_HOST: HOST, TIDINGS_SERVER_PORT: String(a.port), TIDINGS_SUBSCRIBER_ADDRESS: a.sub, TIDINGS_PUBLISHER_ADDRESS: a.pub, TIDINGS_COMMAND_ADDRESS: a.cmd, TIDINGS_WORKERS: workers }, execArgv);
    await p.waitFor(/"msg":"node ready"/).catch(async (err: unknown) => {
      await p.stop();
      throw err;
    });
    const url = `ws://${HOST}:${a.port}/ws`;
    return { kind, label: kind, urls: [url], publishTo: a.pub, wsPublishTo: url, ...publisherCurve, tokenSecret: BENCH_TOKEN_SECRET, pids: [p.child.pid!], stop: () => p.stop() };
  }
  if (opts.cluster === 'pair') return startPair(kind, opts, execArgv, common);
  const d = await addresses();
  const director = tidingsNode(
    'director',
    { ...common, ...curveEnv(directorKeys, { TIDINGS_CURVE_NODE_KEYS: nodeKeys.map((k) => k.publicKey).join(',') }), TIDINGS_SERVER_HOST: HOST, TIDINGS_SERVER_PORT: String(d.port), TIDINGS_EDGE_ENABLED: 'false', TIDINGS_SUBSCRIBER_ADDRESS: d.sub, TIDINGS_PUBLISHER_ADDRESS: d.pub, TIDINGS_COMMAND_ADDRESS: d.cmd },
    execArgv,
  );
  const nodes: Proc[] = [];
  const urls: string[] = [];
  for (let i = 0; i < (opts.nodes ?? 2); i++) {
    const a = await addresses();
    nodes.push(
      tidingsNode(`node${i + 1}`, {
        ...common,
        ...curveEnv(nodeKeys[i]!, { TIDINGS_CURVE_DIRECTOR_KEY: directorKeys.publicKey }),
        TIDINGS_SERVER_HOST: HOST,
        TIDINGS_SERVER_PORT: String(a.port),
        TIDINGS_DIRECTOR_ENABLED: 'false',
        TIDINGS_FORWARDER_ENABLED: 'true',
        TIDINGS_WORKERS: workers,
        TIDINGS_SUBSCRIBER_ADDRESS: a.sub,
        TIDINGS_PUBLISHER_ADDRESS: a.pub,
        TIDINGS_COMMAND_ADDRESS: a.cmd,
        TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: d.sub,
        TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: d.pub,
        TIDINGS_DIRECTOR_COMMAND_ADDRESS: d.cmd,
        TIDINGS_NODE_ID: `node${i + 1}`,
      }, execArgv),
    );
    urls.push(`ws://${HOST}:${a.port}/ws`);
  }
  const all = [director, ...nodes];
  try {
    await Promise.all(all.map((p) => p.waitFor(/"msg":"node ready"/)));
  } catch (err) {
    await Promise.all(all.map((p) => p.stop())); // none of a failed start outlives it
    throw err;
  }
  return {
    kind: opts.curve ? 'tidings-curve' : kind,
    label: `${kind === 'tidings-ws' ? 'tidings-ws' : 'tidings'}-cluster${opts.nodes === undefined ? '' : `-${opts.nodes}`}${suffix}`,
    urls,
    publishTo: d.pub,
    wsPublishTo: urls[0]!,
    ...publisherCurve,
    tokenSecret: BENCH_TOKEN_SECRET,
    pids: all.map((p) => p.child.pid!),
    nodePids: nodes.map((p) => p.child.pid!),
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      await director.stop();
    },
  };
}

/**
 * A director node with its own edge and one forwarder node: subscribers are
 * spread over both, publishers (ZeroMQ and websocket) use the forwarder node,
 * so every message crosses the cluster: up through the forwarder to the
 * director, down to the director's edge and through the forwarder to its edge.
 */
async function startPair(kind: ServerKind, opts: ServerOptions, execArgv: string[], common: Record<string, string>): Promise<RunningServer> {
  const workers = String(opts.workers ?? 1);
  const [d, f] = [await addresses(), await addresses()];
  const director = tidingsNode('director', { ...common, TIDINGS_SERVER_HOST: HOST, TIDINGS_SERVER_PORT: String(d.port), TIDINGS_WORKERS: workers, TIDINGS_SUBSCRIBER_ADDRESS: d.sub, TIDINGS_PUBLISHER_ADDRESS: d.pub, TIDINGS_COMMAND_ADDRESS: d.cmd, TIDINGS_NODE_ID: 'director' }, execArgv);
  const node = tidingsNode('node1', {
    ...common,
    TIDINGS_SERVER_HOST: HOST,
    TIDINGS_SERVER_PORT: String(f.port),
    TIDINGS_DIRECTOR_ENABLED: 'false',
    TIDINGS_FORWARDER_ENABLED: 'true',
    TIDINGS_WORKERS: workers,
    TIDINGS_SUBSCRIBER_ADDRESS: f.sub,
    TIDINGS_PUBLISHER_ADDRESS: f.pub,
    TIDINGS_COMMAND_ADDRESS: f.cmd,
    TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: d.sub,
    TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: d.pub,
    TIDINGS_DIRECTOR_COMMAND_ADDRESS: d.cmd,
    TIDINGS_NODE_ID: 'node1',
  }, execArgv);
  const all = [director, node];
  try {
    await Promise.all(all.map((p) => p.waitFor(/"msg":"node ready"/)));
  } catch (err) {
    await Promise.all(all.map((p) => p.stop()));
    throw err;
  }
  const urls = [`ws://${HOST}:${d.port}/ws`, `ws://${HOST}:${f.port}/ws`];
  return {
    kind,
    label: `${kind}-cluster`,
    urls,
    publishTo: f.pub,
    wsPublishTo: urls[1]!,
    pids: all.map((p) => p.child.pid!),
    stop: async () => {
      await node.stop();
      await director.stop();
    },
  };
}

async function startNodePeer(kind: ServerKind, script: string, execArgv: string[]): Promise<RunningServer> {
  const port = await freePort();
  const p = new Proc(kind, spawn(process.execPath, [...execArgv, join(PEERS, script), String(port), HOST], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await p.waitFor(/ready/);
  const url = kind === 'socketio' ? `ws://${HOST}:${port}/socket.io/?EIO=4&transport=websocket` : `ws://${HOST}:${port}/`;
  const publishTo = kind === 'socketio' ? `http://${HOST}:${port}` : `ws://${HOST}:${port}/?pub=1`;
  return { kind, label: kind, urls: [url], publishTo, pids: [p.child.pid!], stop: () => p.stop() };
}

/** The nats-server binary, installed from Debian when missing (the bench runs as root in the dev box). */
export function natsBinary(): string | null {
  const find = (): string | null => ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((c) => spawnSync(c, ['--version']).status === 0) ?? null;
  const found = find();
  if (found) return found;
  if (spawnSync('apt-get', ['install', '-y', 'nats-server'], { stdio: 'inherit' }).status !== 0) return null;
  return find();
}

/** One nats-server's config: a client port, a websocket port, and in a cluster its route port and the others'. */
function natsConf(port: number, wsPort: number, route?: { listen: number; to: number[] }): string {
  // max_pending raised so a burst within the bench's credit window is never cut as a slow consumer.
  const routes = route ? route.to.map((r) => `"nats-route://${HOST}:${r}"`).join(', ') : '';
  const cluster = route ? `cluster {\n  name: bench\n  listen: "${HOST}:${route.listen}"\n  routes: [${routes}]\n}\n` : '';
  return `listen: ${HOST}:${port}\nmax_payload: 1MB\nmax_pending: 256MB\nmax_connections: 1000000\nwebsocket {\n  listen: "${HOST}:${wsPort}"\n  no_tls: true\n  compression: false\n}\n${cluster}`;
}

/**
 * NATS alone, or routed nats-servers laid out as Tidings' clusters, the
 * reference for what a cluster costs a native server on this machine (issue
 * 17.4, 15.3): `cluster: 'pair'` is two servers with subscribers spread over
 * both and the publisher at the second (every message crosses the route to
 * reach the first's subscribers); `cluster: true` is a server for the
 * publisher alone, as Tidings' director without edges, and `nodes` (default
 * 2) servers for the subscribers.
 */
async function startNats(opts: ServerOptions = {}): Promise<RunningServer> {
  const bin = natsBinary();
  if (!bin) throw new Error('nats-server is not installed and apt-get install -y nats-server failed');
  const count = opts.cluster === 'pair' ? 2 : opts.cluster ? 1 + (opts.nodes ?? 2) : 1;
  const dir = mkdtempSync(join(tmpdir(), 'tidings-bench-nats-'));
  const servers: Array<{ port: number; wsPort: number; route: number }> = [];
  for (let i = 0; i < count; i++) servers.push({ port: await freePort(), wsPort: await freePort(), route: await freePort() });
  const procs = servers.map((s, i) => {
    const conf = join(dir, `nats-${i}.conf`);
    const others = servers.filter((_, j) => j !== i).map((o) => o.route);
    writeFileSync(conf, natsConf(s.port, s.wsPort, count > 1 ? { listen: s.route, to: others } : undefined));
    return new Proc(count > 1 ? `nats-${i + 1}` : 'nats', spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] }));
  });
  const stop = async (): Promise<void> => {
    await Promise.all(procs.map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(procs.map((p) => p.waitFor(/Server is ready/)));
    // Each server logs each of its routes once up; before that a publisher's server would not see the others' subscribers.
    if (count > 1) await Promise.all(procs.map((p) => p.waitFor(/Route connection created/g, 60_000, count - 1)));
  } catch (err) {
    await stop();
    throw err;
  }
  const pair = opts.cluster === 'pair';
  const subscriberServers = count > 1 && !pair ? servers.slice(1) : servers;
  const publisherServer = pair ? servers[1]! : servers[0]!;
  return {
    kind: 'nats',
    label: count > 1 ? `nats-cluster${opts.cluster === true && opts.nodes !== undefined ? `-${opts.nodes}` : ''}` : 'nats',
    urls: subscriberServers.map((s) => `ws://${HOST}:${s.wsPort}/`),
    publishTo: `${HOST}:${publisherServer.port}`,
    pids: procs.map((p) => p.child.pid!),
    stop,
  };
}

export function startServer(kind: ServerKind, opts: ServerOptions = {}): Promise<RunningServer> {
  switch (kind) {
    case 'tidings':
    case 'tidings-ws':
      return startTidings(kind, opts);
    case 'tidings-curve':
      return startTidings(kind, { ...opts, curve: true });
    case 'ws-naive':
      return startNodePeer(kind, 'ws-naive.js', opts.execArgv ?? []);
    case 'ws-batched':
      return startNodePeer(kind, 'ws-batched.js', opts.execArgv ?? []);
    case 'ws-merged':
      return startNodePeer(kind, 'ws-merged.js', opts.execArgv ?? []);
    case 'socketio':
      return startNodePeer(kind, 'socketio.js', opts.execArgv ?? []);
    case 'nats':
      return startNats(opts);
  }
}
