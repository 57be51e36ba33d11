/**
 * The cluster a chaos scenario runs against, as real processes on 127.0.0.1:
 * one director (no edge) and `nodes` forwarder nodes with `workers` edge
 * processes each, as in docker-compose.yml. The director can be stopped and
 * started again on the same addresses, as a supervisor would restart it.
 */
import { NodeProcess } from './process.js';
import { ChaosTopology, addresses, type Addresses, type ClusterSpec } from './topology.js';

export type { ChaosNode, ClusterSpec, Topology } from './topology.js';

export class ChaosCluster extends ChaosTopology {
  director!: NodeProcess;
  private directorStarts = 0;
  private directorAddresses!: Addresses;

  static start(spec: ClusterSpec, logDir: string | null): Promise<ChaosCluster> {
    return ChaosTopology.started(new ChaosCluster(spec, logDir));
  }

  get commandAddress(): string {
    return this.directorAddresses.command;
  }

  protected async launch(): Promise<void> {
    const d = (this.directorAddresses = await addresses());
    this.director = new NodeProcess('director', this.directorEnv('director', d), this.log('director'));
    await Promise.all([this.director.waitReady(), this.startNodes([d])]);
  }

  /** Start the director again on the same addresses (after it died); resolves when it is ready. */
  async restartDirector(): Promise<void> {
    if (this.director.running) throw new Error('the director is still running');
    const name = `director-${++this.directorStarts + 1}`;
    this.director = new NodeProcess(name, this.directorEnv('director', this.directorAddresses), this.log(name));
    await this.director.waitReady();
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.proc.stop()));
    await this.director?.stop();
  }
}
