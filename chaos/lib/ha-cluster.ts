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
import { startRedis, type RedisServer } from '../../test/helpers/redis.js';
import { NodeProcess } from './process.js';
import { ChaosTopology, addresses, type Addresses, type ClusterSpec } from './topology.js';

/** Exit code of a director that lost its lease (src/runtime/loop-guard.ts). */
const EXIT_FENCED = 3;

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

export class HaChaosCluster extends ChaosTopology {
  readonly directors: HaDirectorProcess[] = [];
  redis!: RedisServer;
  private nodeCommand = '';

  static start(spec: ClusterSpec, logDir: string | null): Promise<HaChaosCluster> {
    return ChaosTopology.started(new HaChaosCluster(spec, logDir));
  }

  get commandAddress(): string {
    return this.nodeCommand;
  }

  protected async launch(): Promise<void> {
    this.redis = await startRedis({ appendonly: true, appendfsync: 'always' });
    const all: Addresses[] = [];
    for (let i = 0; i < 2; i++) {
      const a = await addresses();
      all.push(a);
      const name = `director${String.fromCharCode(65 + i)}`;
      const env = { ...this.directorEnv(name, a), TIDINGS_STATE_ENGINE: 'redis', TIDINGS_REDIS_URL: this.redis.url };
      const d = new HaDirectorProcess(name, a, env, (n) => this.log(n));
      this.directors.push(d);
      // The first one starts alone, so it is the first active.
      if (i === 0) await d.proc.waitFor(/"msg":"director listening"/, 30_000);
    }
    await Promise.all(this.directors.map((d) => d.proc.waitReady()));
    this.nodeCommand = (await this.startNodes(all))[0]!.command;
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
