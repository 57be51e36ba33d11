/** kill -9 of a whole forwarder node: its forwarder and every edge worker at once, as when its host or container dies. */
import type { ChaosCluster } from '../lib/cluster.js';
import type { Scenario } from '../lib/scenario.js';

export const nodeKill: Scenario<ChaosCluster> = {
  name: 'node-kill',
  title: 'kill -9 of a forwarder node',
  description:
    "SIGKILL to node1's process and to each of its edge workers at the same moment (a container or host dying: nothing closes cleanly). node1's subscribers fail over to node2 and recover from history. node1 is not restarted.",
  async inject(ctx) {
    const node = ctx.cluster.node('node1');
    const workers = node.proc.workerPids();
    ctx.markFault();
    for (const pid of workers) process.kill(pid, 'SIGKILL');
    await node.proc.kill9();
    ctx.note(`killed node1 (pid ${node.proc.pid}) and its workers ${workers.join(', ')}`);
  },
};
