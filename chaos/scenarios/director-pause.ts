/** SIGSTOP of the director for a while (a long GC pause, a frozen VM), then SIGCONT. */
import type { ChaosCluster } from '../lib/cluster.js';
import type { Scenario } from '../lib/scenario.js';

export const directorPause: Scenario<ChaosCluster> = {
  name: 'director-pause',
  title: 'SIGSTOP of the director (pause), then SIGCONT',
  description:
    'SIGSTOP to the director for --pause seconds (default 5), then SIGCONT. Nothing is sequenced meanwhile: publishes wait in the director\'s sockets (or time out after --ack-timeout), subscribers stay connected to their edges, and everything flows again when the director continues.',
  async inject(ctx) {
    const d = ctx.cluster.director;
    ctx.markFault();
    d.signal('SIGSTOP');
    ctx.note(`stopped the director for ${ctx.params.pauseSeconds} s`);
    try {
      await new Promise((r) => setTimeout(r, ctx.params.pauseSeconds * 1000));
    } finally {
      d.signal('SIGCONT');
    }
  },
};
