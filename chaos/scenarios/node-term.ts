/** SIGTERM of a forwarder node: the graceful shutdown an orchestrator does on a deploy or a scale-down. */
import type { ChaosCluster } from '../lib/cluster.js';
import type { Scenario } from '../lib/scenario.js';

export const nodeTerm: Scenario<ChaosCluster> = {
  name: 'node-term',
  title: 'SIGTERM of a forwarder node',
  description:
    "SIGTERM to node1's process: it stops its edge workers, which close their clients with 1001 (shutdown), then its forwarder. Its subscribers reconnect to node2 and recover from history. node1 is not restarted.",
  async inject(ctx) {
    const node = ctx.cluster.node('node1');
    ctx.markFault();
    node.proc.signal('SIGTERM');
    await node.proc.exited;
    ctx.note(`node1 stopped (exit ${node.proc.child.exitCode ?? node.proc.child.signalCode})`);
  },
};
