/**
 * What every chaos cluster shape shares: the settings all its processes get
 * (random secrets, the scenario's settings), free addresses on 127.0.0.1,
 * forwarder nodes following one or several directors, start-up that stops
 * what it started when a later step fails. A shape (one director that can be
 * restarted, a failover group on Redis) adds its directors.
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

export const HOST = '127.0.0.1';

/** A node's HTTP port and its three ZeroMQ addresses. */
export interface Addresses {
  port: number;
  subscriber: string;
  publisher: string;
  command: string;
}

export async function addresses(): Promise<Addresses> {
  const [port, sub, pub, cmd] = [await freePort(), await freePort(), await freePort(), await freePort()];
  return { port, subscriber: `tcp://${HOST}:${sub}`, publisher: `tcp://${HOST}:${pub}`, command: `tcp://${HOST}:${cmd}` };
}

export abstract class ChaosTopology implements Topology {
  readonly tokenSecret = randomBytes(24).toString('hex');
  private readonly apiKey = randomBytes(16).toString('hex');
  readonly nodes: ChaosNode[] = [];

  protected constructor(
    readonly spec: ClusterSpec,
    protected readonly logDir: string | null,
  ) {}

  abstract get commandAddress(): string;
  /** Start every process; `started` stops what was started if this throws. */
  protected abstract launch(): Promise<void>;
  abstract stop(): Promise<void>;

  /** `cluster` launched, or stopped again and the error thrown. */
  protected static async started<T extends ChaosTopology>(cluster: T): Promise<T> {
    try {
      await cluster.launch();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Settings every process of the cluster gets. */
  protected common(): Record<string, string> {
    const env: Record<string, string> = { TIDINGS_TOKEN_SECRET: this.tokenSecret, TIDINGS_API_KEYS: this.apiKey, TIDINGS_LOG_LEVEL: 'info' };
    for (const [k, v] of Object.entries(this.spec.settings)) env[envName(k)] = v;
    return env;
  }

  /** The log file of process `name`, or null (output kept in memory only). */
  protected log(name: string): string | null {
    return this.logDir ? join(this.logDir, `${name}.log`) : null;
  }

  /** The settings of a director-only process (no edge) on `a`. */
  protected directorEnv(name: string, a: Addresses): Record<string, string> {
    return {
      ...this.common(),
      TIDINGS_SERVER_HOST: HOST,
      TIDINGS_SERVER_PORT: String(a.port),
      TIDINGS_EDGE_ENABLED: 'false',
      TIDINGS_SUBSCRIBER_ADDRESS: a.subscriber,
      TIDINGS_PUBLISHER_ADDRESS: a.publisher,
      TIDINGS_COMMAND_ADDRESS: a.command,
      TIDINGS_NODE_ID: name,
    };
  }

  /** Start spec.nodes forwarder nodes following `directors` (a failover group when several); their addresses. */
  protected async startNodes(directors: readonly Addresses[]): Promise<Addresses[]> {
    const out: Addresses[] = [];
    for (let i = 1; i <= this.spec.nodes; i++) {
      const a = await addresses();
      out.push(a);
      const name = `node${i}`;
      const env = {
        ...this.common(),
        TIDINGS_SERVER_HOST: HOST,
        TIDINGS_SERVER_PORT: String(a.port),
        TIDINGS_DIRECTOR_ENABLED: 'false',
        TIDINGS_FORWARDER_ENABLED: 'true',
        TIDINGS_WORKERS: String(this.spec.workers),
        TIDINGS_SUBSCRIBER_ADDRESS: a.subscriber,
        TIDINGS_PUBLISHER_ADDRESS: a.publisher,
        TIDINGS_COMMAND_ADDRESS: a.command,
        TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: directors.map((d) => d.subscriber).join(','),
        TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: directors.map((d) => d.publisher).join(','),
        TIDINGS_DIRECTOR_COMMAND_ADDRESS: directors.map((d) => d.command).join(','),
        TIDINGS_NODE_ID: name,
      };
      this.nodes.push({ name, url: `ws://${HOST}:${a.port}/ws`, proc: new NodeProcess(name, env, this.log(name)) });
    }
    await Promise.all(this.nodes.map((n) => n.proc.waitReady()));
    return out;
  }

  node(name: string): ChaosNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }
}
