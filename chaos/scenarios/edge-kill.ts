/** kill -9 of one edge worker process; its node starts a new one. */
import type { ChaosCluster } from '../lib/cluster.js';
import type { Scenario } from '../lib/scenario.js';

export const edgeKill: Scenario<ChaosCluster> = {
  name: 'edge-kill',
  title: 'kill -9 of an edge worker',
  description:
    "SIGKILL to the first edge worker of node1. Its subscribers' websockets drop (1006); the SDK reconnects (to node2 first, the next URL of its list) and resubscribes from its last offset, and the server replays what it missed from history. node1 starts a new worker.",
  async inject(ctx) {
    const node = ctx.cluster.node('node1');
    const [pid] = node.proc.workerPids();
    if (!pid) throw new Error('node1 has no edge worker');
    ctx.markFault();
    process.kill(pid, 'SIGKILL');
    ctx.note(`killed edge worker ${pid} of node1`);
    // The fault is over when the node has its workers again.
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const pids = node.proc.workerPids();
      if (pids.length >= ctx.cluster.spec.workers && !pids.includes(pid)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    ctx.note('node1 did not replace its worker within 15 s');
  },
};
