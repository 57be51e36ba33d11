/**
 * The cluster a chaos scenario runs against, as real processes on 127.0.0.1:
 * one director (no edge) and `nodes` forwarder nodes with `workers` edge
 * processes each, as in docker-compose.yml. The director can be stopped and
 * started again on the same addresses, as a supervisor would restart it.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { envName } from '../../src/config/settings.js';
import { NodeProcess, freePort } from './process.js';

export interface ClusterSpec {
  nodes: number;
  workers: number;
  /** Tidings settings by name (`history_size`: '1000'), for every process. */
  settings: Record<string, string>;
}

export interface ChaosNode {
  readonly name: string;
  /** The websocket URL clients connect to. */
  readonly url: string;
  readonly proc: NodeProcess;
}

/** What the harness needs from a cluster; a scenario with another shape provides its own. */
export interface Topology {
  /** Nodes with edges: every one gets subscribers. */
  readonly nodes: readonly ChaosNode[];
  /** Where acknowledged publishes go (a ZeroMQ command address). */
  readonly commandAddress: string;
  /** The secret client tokens are signed with. */
  readonly tokenSecret: string;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

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

export class ChaosCluster implements Topology {
  readonly tokenSecret = randomBytes(24).toString('hex');
  private readonly apiKey = randomBytes(16).toString('hex');
  director!: NodeProcess;
  private directorEnv: Record<string, string> = {};
  private directorStarts = 0;
  private directorAddresses!: Addresses;
  readonly nodes: ChaosNode[] = [];

  /** Subclasses (another cluster shape) extend launch() and are started the same way. */
  protected constructor(
    readonly spec: ClusterSpec,
    protected readonly logDir: string | null,
  ) {}

  static async start(spec: ClusterSpec, logDir: string | null): Promise<ChaosCluster> {
    const c = new ChaosCluster(spec, logDir);
    try {
      await c.launch();
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  get commandAddress(): string {
    return this.directorAddresses.command;
  }

  protected common(): Record<string, string> {
    const env: Record<string, string> = {
      TIDINGS_TOKEN_SECRET: this.tokenSecret,
      TIDINGS_API_KEYS: this.apiKey,
      TIDINGS_LOG_LEVEL: 'info',
    };
    for (const [k, v] of Object.entries(this.spec.settings)) env[envName(k)] = v;
    return env;
  }

  protected log(name: string): string | null {
    return this.logDir ? join(this.logDir, `${name}.log`) : null;
  }

  protected async launch(): Promise<void> {
    const d = (this.directorAddresses = await addresses());
    this.directorEnv = {
      ...this.common(),
      TIDINGS_SERVER_HOST: HOST,
      TIDINGS_SERVER_PORT: String(d.port),
      TIDINGS_EDGE_ENABLED: 'false',
      TIDINGS_SUBSCRIBER_ADDRESS: d.subscriber,
      TIDINGS_PUBLISHER_ADDRESS: d.publisher,
      TIDINGS_COMMAND_ADDRESS: d.command,
      TIDINGS_NODE_ID: 'director',
    };
    this.director = new NodeProcess('director', this.directorEnv, this.log('director'));
    for (let i = 1; i <= this.spec.nodes; i++) {
      const a = await addresses();
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
          TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: d.subscriber,
          TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: d.publisher,
          TIDINGS_DIRECTOR_COMMAND_ADDRESS: d.command,
          TIDINGS_NODE_ID: name,
        },
        this.log(name),
      );
      this.nodes.push({ name, url: `ws://${HOST}:${a.port}/ws`, proc });
    }
    await Promise.all([this.director, ...this.nodes.map((n) => n.proc)].map((p) => p.waitReady()));
  }

  node(name: string): ChaosNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Start the director again on the same addresses (after it died); resolves when it is ready. */
  async restartDirector(): Promise<void> {
    if (this.director.running) throw new Error('the director is still running');
    this.directorStarts++;
    this.director = new NodeProcess(`director-${this.directorStarts + 1}`, this.directorEnv, this.log(`director-${this.directorStarts + 1}`));
    await this.director.waitReady();
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.proc.stop()));
    await this.director?.stop();
  }
}
