/** kill -9 of the director, started again on the same addresses (as a supervisor restarts it). */
import type { ChaosCluster } from '../lib/cluster.js';
import type { Scenario } from '../lib/scenario.js';

export const directorRestart: Scenario<ChaosCluster> = {
  name: 'director-restart',
  title: 'kill -9 of the director, restarted',
  description:
    "SIGKILL to the director, then a new director on the same addresses after --restart-delay seconds (default 0), with today's in-memory state: it starts empty, every channel gets a new epoch. Edges see the epoch change and close their subscribers with 4006; the SDK resubscribes, and a position from the old epoch cannot be recovered (recovered: false). Publishes sent while it is down wait in the publisher's socket and are sequenced by the new director, or time out.",
  async inject(ctx) {
    const c = ctx.cluster;
    ctx.markFault();
    await c.director.kill9();
    ctx.note('killed the director');
    if (ctx.params.restartDelaySeconds > 0) await new Promise((r) => setTimeout(r, ctx.params.restartDelaySeconds * 1000));
    const t = Date.now();
    await c.restartDirector();
    ctx.note(`director restarted, ready in ${Date.now() - t} ms`);
  },
};
