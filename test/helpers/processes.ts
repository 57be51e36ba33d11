/**
 * Real `tidings` processes for integration tests: started from dist/, stopped
 * by PID (SIGTERM, then SIGKILL), output kept for failure messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { freePorts } from './ports.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/src/cli/main.js, from dist/test/helpers. */
export const CLI = join(here, '..', '..', 'src', 'cli', 'main.js');

export const TOKEN_SECRET = 'test-token-secret-0123456789abcdef0123456789';
export const API_KEY = 'test-api-key';

const live = new Set<ChildProcess>();
/** Output kept per process (characters). */
const MAX_OUTPUT_BYTES = 8 * 1024 * 1024;

export class TidingsProcess {
  /** What the process wrote (stdout and stderr), the newest MAX_OUTPUT_BYTES at most. */
  private readonly output: string[] = [];
  private outputBytes = 0;
  /** output joined, until more arrives. */
  private joined: string | null = '';
  private exited: Promise<number | null>;
  exitCode: number | null | undefined = undefined;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    live.add(child);
    // Bounded in bytes, not chunks: a busy process at debug level writes thousands of small chunks, and a
    // test that counts lines since the process started must still see them all.
    const keep = (d: Buffer): void => {
      const text = d.toString();
      this.output.push(text);
      this.outputBytes += text.length;
      this.joined = null;
      let excess = this.outputBytes - MAX_OUTPUT_BYTES;
      while (excess > 0) {
        const first = this.output[0]!;
        if (first.length <= excess) this.output.shift();
        else this.output[0] = first.slice(excess);
        const cut = Math.min(first.length, excess);
        this.outputBytes -= cut;
        excess -= cut;
      }
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        live.delete(child);
        this.exitCode = code;
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  text(): string {
    if (this.joined === null) {
      this.joined = this.output.join('');
      this.output.splice(0, this.output.length, this.joined);
    }
    return this.joined;
  }

  /** Resolves when a log line matching `pattern` appears, or rejects after timeoutMs. */
  async waitFor(pattern: RegExp, timeoutMs = 15000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (pattern.test(this.text())) return;
      if (this.exitCode !== undefined) throw new Error(`${this.name} exited (${this.exitCode}) before ${pattern}:\n${this.text().slice(-3000)}`);
      await sleep(25);
    }
    throw new Error(`${this.name}: no ${pattern} within ${timeoutMs} ms:\n${this.text().slice(-3000)}`);
  }

  wait(): Promise<number | null> {
    return this.exited;
  }

  /** SIGTERM, then SIGKILL after graceMs. Safe to call twice. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }

  async kill9(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Start `tidings serve` with settings given as TIDINGS_* environment variables. */
export function serve(name: string, env: Record<string, string>, args: string[] = []): TidingsProcess {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], {
    env: { PATH: process.env['PATH'] ?? '', TIDINGS_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new TidingsProcess(name, child);
}

/** Where a test's stand-in director listens (its XPUB, XSUB and ROUTER), and the node's HTTP port. */
export interface StandInPorts {
  http: number;
  subscriber: number;
  publisher: number;
  command: number;
}

/**
 * An edge-only node (no director of its own, one edge worker) on 127.0.0.1 whose cluster
 * addresses are those of a director the test plays; resolves once the node is ready, and
 * stops it when it does not get there.
 */
export async function serveEdgeOnly(ports: StandInPorts, env: Record<string, string> = {}): Promise<TidingsProcess> {
  const node = serve('edge-only', {
    TIDINGS_DIRECTOR_ENABLED: 'false',
    TIDINGS_SERVER_HOST: '127.0.0.1',
    TIDINGS_SERVER_PORT: String(ports.http),
    TIDINGS_SUBSCRIBER_ADDRESS: `tcp://127.0.0.1:${ports.subscriber}`,
    TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${ports.publisher}`,
    TIDINGS_COMMAND_ADDRESS: `tcp://127.0.0.1:${ports.command}`,
    TIDINGS_TOKEN_SECRET: TOKEN_SECRET,
    TIDINGS_WORKERS: '1',
    ...env,
  });
  try {
    await node.waitFor(/"msg":"node ready"/);
  } catch (err) {
    await node.stop();
    throw err;
  }
  return node;
}

export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 20000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tidings ${args.join(' ')} timed out:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    // 'close', not 'exit': the last output may still be in the pipes when the process has exited.
    child.once('close', (code) => {
      clearTimeout(t);
      live.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Kill whatever a failed test left running. */
export function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
}
process.once('exit', killAll);

export interface SingleNode {
  proc: TidingsProcess;
  port: number;
  url: string;
  http: string;
  subscriber: string;
  publisher: string;
  command: string;
  stop(): Promise<void>;
}

/** A single node (director + edge) on free ports. */
export async function startSingleNode(extraEnv: Record<string, string> = {}, workers = 1, host = '127.0.0.1'): Promise<SingleNode> {
  const [port, sub, pub, cmd] = await freePorts(4, host);
  const addresses = {
    subscriber: `tcp://${host}:${sub}`,
    publisher: `tcp://${host}:${pub}`,
    command: `tcp://${host}:${cmd}`,
  };
  const proc = serve('single', {
    TIDINGS_SERVER_HOST: host,
    TIDINGS_SERVER_PORT: String(port),
    TIDINGS_SUBSCRIBER_ADDRESS: addresses.subscriber,
    TIDINGS_PUBLISHER_ADDRESS: addresses.publisher,
    TIDINGS_COMMAND_ADDRESS: addresses.command,
    TIDINGS_TOKEN_SECRET: TOKEN_SECRET,
    TIDINGS_API_KEYS: API_KEY,
    TIDINGS_WORKERS: String(workers),
    ...extraEnv,
  });
  try {
    await proc.waitFor(/"msg":"node ready"/);
  } catch (err) {
    await proc.stop(); // a node that never got ready must not outlive the test
    throw err;
  }
  return {
    proc,
    port,
    url: `ws://${host}:${port}/ws`,
    http: `http://${host}:${port}`,
    ...addresses,
    stop: () => proc.stop(),
  };
}

export interface ClusterNode {
  proc: TidingsProcess;
  port: number;
  url: string;
  http: string;
  subscriber: string;
  publisher: string;
  command: string;
}

export interface Cluster {
  director: ClusterNode;
  nodes: ClusterNode[];
  /** The director's environment, to start it again (after a kill) with `serve`. */
  directorEnv: Record<string, string>;
  stop(): Promise<void>;
}

/** Settings of one forwarder node beyond the usual ones (e.g. director addresses through a proxy). */
export type NodeEnv = (index: number, director: ClusterNode) => Record<string, string> | Promise<Record<string, string>>;

/**
 * The environment of a forwarder node (no director role) named `name`, on
 * `host` with its HTTP and three ZeroMQ ports, following `directors` (several:
 * a failover group, every address listed in order).
 */
export function forwarderNodeEnv(
  name: string,
  host: string,
  [port, sub, pub, cmd]: readonly number[],
  workers: number,
  directors: ReadonlyArray<{ subscriber: string; publisher: string; command: string }>,
): Record<string, string> {
  return {
    TIDINGS_SERVER_HOST: host,
    TIDINGS_SERVER_PORT: String(port),
    TIDINGS_DIRECTOR_ENABLED: 'false',
    TIDINGS_FORWARDER_ENABLED: 'true',
    TIDINGS_WORKERS: String(workers),
    TIDINGS_SUBSCRIBER_ADDRESS: `tcp://${host}:${sub}`,
    TIDINGS_PUBLISHER_ADDRESS: `tcp://${host}:${pub}`,
    TIDINGS_COMMAND_ADDRESS: `tcp://${host}:${cmd}`,
    TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: directors.map((d) => d.subscriber).join(','),
    TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: directors.map((d) => d.publisher).join(','),
    TIDINGS_DIRECTOR_COMMAND_ADDRESS: directors.map((d) => d.command).join(','),
    TIDINGS_TOKEN_SECRET: TOKEN_SECRET,
    TIDINGS_API_KEYS: API_KEY,
    TIDINGS_NODE_ID: name,
  };
}

/**
 * A director (no edge, HTTP API only) and `nodeCount` forwarder nodes with
 * `workers` edge processes each, as in docker-compose.yml.
 */
export async function startCluster(
  nodeCount = 2,
  workers = 2,
  extraEnv: Record<string, string> = {},
  /** Settings of one node by name ('director', 'node1', ...), e.g. its CURVE keys. */
  perNode: Record<string, Record<string, string>> = {},
  /** Settings of a forwarder node computed once the director's addresses are known (e.g. through a proxy). */
  nodeEnv?: NodeEnv,
): Promise<Cluster> {
  const host = '127.0.0.1';
  const [dport, dsub, dpub, dcmd] = await freePorts(4);
  const directorEnv = {
    TIDINGS_SERVER_HOST: host,
    TIDINGS_SERVER_PORT: String(dport),
    TIDINGS_EDGE_ENABLED: 'false',
    TIDINGS_SUBSCRIBER_ADDRESS: `tcp://${host}:${dsub}`,
    TIDINGS_PUBLISHER_ADDRESS: `tcp://${host}:${dpub}`,
    TIDINGS_COMMAND_ADDRESS: `tcp://${host}:${dcmd}`,
    TIDINGS_TOKEN_SECRET: TOKEN_SECRET,
    TIDINGS_API_KEYS: API_KEY,
    TIDINGS_NODE_ID: 'director',
    ...extraEnv,
    ...perNode['director'],
  };
  const director: ClusterNode = {
    proc: serve('director', directorEnv),
    port: dport,
    url: `ws://${host}:${dport}/ws`,
    http: `http://${host}:${dport}`,
    subscriber: `tcp://${host}:${dsub}`,
    publisher: `tcp://${host}:${dpub}`,
    command: `tcp://${host}:${dcmd}`,
  };
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < nodeCount; i++) {
    const [port, sub, pub, cmd] = await freePorts(4);
    nodes.push({
      proc: serve(`node${i + 1}`, {
        ...forwarderNodeEnv(`node${i + 1}`, host, [port, sub, pub, cmd], workers, [director]),
        ...extraEnv,
        ...perNode[`node${i + 1}`],
        ...(nodeEnv ? await nodeEnv(i, director) : {}),
      }),
      port,
      url: `ws://${host}:${port}/ws`,
      http: `http://${host}:${port}`,
      subscriber: `tcp://${host}:${sub}`,
      publisher: `tcp://${host}:${pub}`,
      command: `tcp://${host}:${cmd}`,
    });
  }
  try {
    await Promise.all([director, ...nodes].map((n) => n.proc.waitFor(/"msg":"node ready"/, 20000)));
  } catch (err) {
    await Promise.all([director, ...nodes].map((n) => n.proc.stop()));
    throw err;
  }
  return {
    director,
    nodes,
    directorEnv,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.proc.stop()));
      await director.proc.stop();
    },
  };
}
