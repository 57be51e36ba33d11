/**
 * The failover shape of a chaos cluster: a redis-server of its own (append-
 * only file on), two directors on the redis engine (one active by lease, the
 * other standing by) and `nodes` forwarder nodes configured with both
 * directors' addresses, as in docker-compose.ha.yml. A director that exits
 * with 3 (it lost its lease) is started again as a standby, as its
 * supervisor would. Acknowledged publishes go through node1's forwarder
 * command address, so they follow the active director as a backend beside a
 * node does.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { envName } from '../../src/config/settings.js';
import { startRedis, type RedisServer } from '../../test/helpers/redis.js';
import { NodeProcess, freePort } from './process.js';
import type { ChaosNode, ClusterSpec, Topology } from './cluster.js';

const HOST = '127.0.0.1';
/** Exit code of a director that lost its lease (src/runtime/loop-guard.ts). */
const EXIT_FENCED = 3;

interface Addresses {
  port: number;
  subscriber: string;
  publisher: string;
  command: string;
}

async function addresses(): Promise<Addresses> {
  const [port, sub, pub, cmd] = [await freePort(), await freePort(), await freePort(), await freePort()];
  return { port, subscriber: `tcp://${HOST}:${sub}`, publisher: `tcp://${HOST}:${pub}`, command: `tcp://${HOST}:${cmd}` };
}

export class HaDirectorProcess {
  proc: NodeProcess;
  /** Times it exited with 3 and was started again. */
  fencedExits = 0;
  private starts = 1;
  private stopping = false;

  constructor(
    readonly name: string,
    readonly addresses: Addresses,
    private readonly env: Record<string, string>,
    private readonly logPath: (name: string) => string | null,
  ) {
    this.proc = this.supervise(new NodeProcess(name, env, logPath(name)));
  }

  private supervise(p: NodeProcess): NodeProcess {
    void p.exited.then(() => {
      if (p.child.exitCode === EXIT_FENCED && !this.stopping && this.proc === p) {
        this.fencedExits++;
        this.restart();
      }
    });
    return p;
  }

  /** Start it again with the same settings (after kill -9, or by the supervisor after exit 3). */
  restart(): NodeProcess {
    if (this.proc.running) throw new Error(`${this.name} is still running`);
    const name = `${this.name}-${++this.starts}`;
    this.proc = this.supervise(new NodeProcess(name, this.env, this.logPath(name)));
    return this.proc;
  }

  /** Whether this process logged that it sequences (it is, or was until it died or was fenced, the active one). */
  get listening(): boolean {
    return this.proc.running && /"msg":"director listening"/.test(this.proc.output());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.proc.stop();
  }
}

export class HaChaosCluster implements Topology {
  readonly tokenSecret = randomBytes(24).toString('hex');
  private readonly apiKey = randomBytes(16).toString('hex');
  readonly directors: HaDirectorProcess[] = [];
  readonly nodes: ChaosNode[] = [];
  redis!: RedisServer;
  private nodeCommand = '';

  private constructor(
    readonly spec: ClusterSpec,
    private readonly logDir: string | null,
  ) {}

  static async start(spec: ClusterSpec, logDir: string | null): Promise<HaChaosCluster> {
    const c = new HaChaosCluster(spec, logDir);
    try {
      await c.launch();
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  get commandAddress(): string {
    return this.nodeCommand;
  }

  private log(name: string): string | null {
    return this.logDir ? join(this.logDir, `${name}.log`) : null;
  }

  private common(): Record<string, string> {
    const env: Record<string, string> = { TIDINGS_TOKEN_SECRET: this.tokenSecret, TIDINGS_API_KEYS: this.apiKey, TIDINGS_LOG_LEVEL: 'info' };
    for (const [k, v] of Object.entries(this.spec.settings)) env[envName(k)] = v;
    return env;
  }

  private async launch(): Promise<void> {
    this.redis = await startRedis({ appendonly: true, appendfsync: 'always' });
    const all: Addresses[] = [];
    for (let i = 0; i < 2; i++) {
      const a = await addresses();
      all.push(a);
      const name = `director${String.fromCharCode(65 + i)}`;
      const env = {
        ...this.common(),
        TIDINGS_SERVER_HOST: HOST,
        TIDINGS_SERVER_PORT: String(a.port),
        TIDINGS_EDGE_ENABLED: 'false',
        TIDINGS_SUBSCRIBER_ADDRESS: a.subscriber,
        TIDINGS_PUBLISHER_ADDRESS: a.publisher,
        TIDINGS_COMMAND_ADDRESS: a.command,
        TIDINGS_STATE_ENGINE: 'redis',
        TIDINGS_REDIS_URL: this.redis.url,
        TIDINGS_NODE_ID: name,
      };
      const d = new HaDirectorProcess(name, a, env, (n) => this.log(n));
      this.directors.push(d);
      // The first one starts alone, so it is the first active.
      if (i === 0) await d.proc.waitFor(/"msg":"director listening"/, 30_000);
    }
    await Promise.all(this.directors.map((d) => d.proc.waitReady()));
    for (let i = 1; i <= this.spec.nodes; i++) {
      const a = await addresses();
      if (i === 1) this.nodeCommand = a.command;
      const name = `node${i}`;
      const proc = new NodeProcess(
        name,
        {
          ...this.common(),
          TIDINGS_SERVER_HOST: HOST,
          TIDINGS_SERVER_PORT: String(a.port),
          TIDINGS_DIRECTOR_ENABLED: 'false',
          TIDINGS_FORWARDER_ENABLED: 'true',
          TIDINGS_WORKERS: String(this.spec.workers),
          TIDINGS_SUBSCRIBER_ADDRESS: a.subscriber,
          TIDINGS_PUBLISHER_ADDRESS: a.publisher,
          TIDINGS_COMMAND_ADDRESS: a.command,
          TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: all.map((x) => x.subscriber).join(','),
          TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: all.map((x) => x.publisher).join(','),
          TIDINGS_DIRECTOR_COMMAND_ADDRESS: all.map((x) => x.command).join(','),
          TIDINGS_NODE_ID: name,
        },
        this.log(name),
      );
      this.nodes.push({ name, url: `ws://${HOST}:${a.port}/ws`, proc });
    }
    await Promise.all(this.nodes.map((n) => n.proc.waitReady()));
    await Promise.all(this.nodes.map((n) => n.proc.waitFor(/following the active director/, 30_000)));
  }

  /** The one running director that sequences, waiting up to timeoutMs for there to be exactly one. */
  async active(timeoutMs = 15_000): Promise<HaDirectorProcess> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const live = this.directors.filter((d) => d.listening);
      if (live.length === 1) return live[0]!;
      if (Date.now() > deadline) throw new Error(`no single active director: ${live.map((d) => d.name).join(', ') || 'none'}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.proc.stop()));
    await Promise.all(this.directors.map((d) => d.stop()));
    await this.redis?.stop();
  }
}
