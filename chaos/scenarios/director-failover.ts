/**
 * The redis engine's failover: two directors sharing their state in Redis,
 * the active one killed (kill -9) or paused past its lease (SIGSTOP, then
 * SIGCONT); the standby takes the lease and sequences the same streams.
 */
import { HaChaosCluster } from '../lib/ha-cluster.js';
import type { Scenario, ScenarioContext } from '../lib/scenario.js';

/** Wait until another director than `oldName` sequences; notes when it logged so, after `since`. */
async function takeover(ctx: ScenarioContext<HaChaosCluster>, oldName: string, since: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const d = ctx.cluster.directors.find((x) => x.name !== oldName && x.listening);
    if (d) {
      const line = d.proc.output().split('\n').find((l) => l.includes('"msg":"director listening"'));
      const at = line ? Date.parse((JSON.parse(line) as { time: string }).time) : Date.now();
      ctx.note(`${d.name} sequencing ${at - since} ms after the fault`);
      return;
    }
    if (Date.now() > deadline) throw new Error('no standby took over within 15 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const directorFailover: Scenario<HaChaosCluster> = {
  name: 'director-failover',
  title: 'kill -9 of the active director (redis engine, a standby takes over)',
  description:
    'Two directors on the redis engine (a redis-server with its append-only file), forwarders configured with both. SIGKILL to the active one: the standby takes the lease when it expires (director_lease, 2 s) and sequences the same streams from Redis (same epochs, next offsets); forwarders follow it, subscribers recover with recovered: true. Publishes go through a forwarder: those sent while no director is active time out or are refused, none acknowledged is lost. The killed director is started again after --restart-delay seconds and stands by.',
  topology: (spec, logDir) => HaChaosCluster.start(spec, logDir),
  async inject(ctx) {
    const old = await ctx.cluster.active();
    ctx.markFault();
    const killedAt = Date.now();
    await old.proc.kill9();
    ctx.note(`killed ${old.name}, the active director`);
    await takeover(ctx, old.name, killedAt);
    if (ctx.params.restartDelaySeconds > 0) await new Promise((r) => setTimeout(r, ctx.params.restartDelaySeconds * 1000));
    old.restart();
    await old.proc.waitFor(/"msg":"director standing by for the lease"/, 30_000);
    ctx.note(`${old.name} restarted, standing by`);
  },
};

export const directorFailoverPause: Scenario<HaChaosCluster> = {
  name: 'director-failover-pause',
  title: 'SIGSTOP of the active director past its lease, then SIGCONT (redis engine)',
  description:
    'Two directors on the redis engine. SIGSTOP to the active one for --pause seconds (default 5, longer than the 2 s lease): the standby takes over; on SIGCONT the old one finds its lease gone (Redis refuses its writes already: fencing), exits with 3 and is started again as a standby. Never two sequencers: no offset twice, none reordered.',
  topology: (spec, logDir) => HaChaosCluster.start(spec, logDir),
  async inject(ctx) {
    const old = await ctx.cluster.active();
    const proc = old.proc;
    const fencedBefore = old.fencedExits;
    ctx.markFault();
    const stoppedAt = Date.now();
    proc.signal('SIGSTOP');
    ctx.note(`stopped ${old.name} for ${ctx.params.pauseSeconds} s`);
    try {
      await takeover(ctx, old.name, stoppedAt);
      const rest = stoppedAt + ctx.params.pauseSeconds * 1000 - Date.now();
      if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    } finally {
      proc.signal('SIGCONT');
    }
    await proc.exited;
    ctx.note(`${old.name} exited ${proc.child.exitCode} after SIGCONT (fenced)`);
    const deadline = Date.now() + 30_000;
    while (old.fencedExits === fencedBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await old.proc.waitFor(/"msg":"director standing by for the lease"/, 30_000);
    ctx.note(`${old.name} restarted by its supervisor, standing by`);
  },
};
