/**
 * The director's cluster-wide channel state beside the sequencer: presence,
 * user state and channel configs, the events they send down (join, leave,
 * state) and the expiry of silent edges. Commands reach it through
 * state-commands.ts and connection-commands.ts.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { edgeTopic } from '../cluster/topics.js';
import type { Director } from './director.js';
import { ChannelConfigs, channelstreamDefaults, historyOptions, nativeDefaults, type ChannelConfig } from './channel-config.js';
import { PresenceState, type PresenceChange } from './presence.js';
import { publicChanges, publicState, type StateChange } from './user-state.js';

/** Most connections the director tracks (registered and attached). */
const MAX_CONNECTIONS = 2_000_000;
/** How often silent edges and unclaimed connections are looked for. */
const EXPIRY_CHECK_MS = 250;
/** Users with no connection keep their state this long. */
const USER_IDLE_MS = 10 * 60_000;

export function eventId(): string {
  return randomBytes(16).toString('hex');
}

export class ClusterState {
  readonly presence = new PresenceState(MAX_CONNECTIONS);
  readonly configs: ChannelConfigs;
  readonly ttlMs: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly expired: Counter;
  /** Told of edge instances whose presence expired (a dead node), so state kept per edge (WAMP registrations) goes too. */
  readonly expiredInstanceHooks: Array<(instances: readonly string[]) => void> = [];

  constructor(
    readonly director: Director,
    readonly log: Logger,
    registry: Registry,
  ) {
    const presence = this.presence;
    new Gauge({
      name: 'tidings_director_presence_connections',
      help: 'Connections the director tracks (attached to an edge or registered)',
      registers: [registry],
      collect() {
        this.set(presence.conns.size);
      },
    });
    new Gauge({
      name: 'tidings_director_presence_edges',
      help: 'Edge processes whose heartbeats the director receives',
      registers: [registry],
      collect() {
        this.set(presence.instanceCount());
      },
    });
    this.expired = new Counter({ name: 'tidings_director_presence_expired_total', help: 'Connections removed from presence because their edge went silent or their client never came', registers: [registry] });
    const c = director.config;
    this.ttlMs = c.presence_ttl * 1000;
    this.configs = new ChannelConfigs(nativeDefaults(c.history_size, c.history_ttl), channelstreamDefaults(c.history_ttl));
    director.channelHolds.push((ch) => this.presence.hasMembers(ch));
    director.collectors.push((now) => this.collect(now));
  }

  start(): void {
    // Expiry runs often (it only looks at edges and detached connections) so a
    // silent edge leaves presence within ttl + 0.25 s of its last heartbeat.
    this.timer = setInterval(() => this.expire(Date.now()), EXPIRY_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  expire(now: number): void {
    const { changes, removed, instances, edges } = this.presence.expire(now, this.ttlMs);
    this.expired.inc(removed.length);
    if (edges.length > 0) {
      const nodes = [...new Set(edges.map((e) => e.split('/')[0]))];
      this.log.warn({ nodes, edges, instances, connections: removed.length }, `edge ${edges.join(', ')} silent for ${this.ttlMs / 1000} s: its connections left presence (node ${nodes.join(', ')} down?)`);
    } else if (removed.length > 0) {
      this.log.info({ connections: removed.length }, 'registered connections whose client never came expired');
    }
    if (instances.length > 0) for (const hook of this.expiredInstanceHooks) hook(instances);
    this.announce(changes, now);
  }

  private collect(now: number): void {
    // A config lives as long as its channel's state (collected when idle, empty and unheld).
    for (const name of [...this.configs.names()]) {
      if (!this.director.channels.get(name) && !this.presence.hasMembers(name)) this.configs.forget(name);
    }
    this.presence.collectUsers(now, USER_IDLE_MS);
  }

  // --- channel configs --------------------------------------------------------------

  /** Make the channel's history follow its config (creating the channel's state). */
  applyHistory(channel: string, cfg: ChannelConfig, now: number): void {
    const state = this.director.channels.getOrCreate(channel, now);
    state.options = historyOptions(cfg);
    state.expire(now);
  }

  /** channelstream's "config applied when the channel is created". */
  createChannel(channel: string, rawConfig: unknown, now: number): ChannelConfig {
    const isNew = !this.configs.has(channel);
    const cfg = this.configs.createIfNew(channel, rawConfig);
    if (isNew) this.applyHistory(channel, cfg, now);
    return cfg;
  }

  // --- events -------------------------------------------------------------------

  /** Send join/leave events on channels configured to notify presence. */
  announce(changes: readonly PresenceChange[], now: number): void {
    for (const ch of changes) {
      const cfg = this.configs.effective(ch.channel);
      if (!cfg.notify_presence) continue;
      const push: Record<string, unknown> = { type: ch.action, channel: ch.channel, user: ch.user };
      if (ch.action === 'join') push['state'] = this.publicStateOf(ch.user);
      push['time'] = now;
      push['id'] = eventId();
      if (cfg.broadcast_presence_with_user_lists) {
        push['users'] = this.presence.usersIn(ch.channel).map((u) => ({ user: u.user, state: this.publicStateOf(u.user) }));
      }
      this.send(ch.channel, ch.user, push);
    }
  }

  /** Send a state change to the user's channels configured to notify state. */
  announceState(user: string, changed: readonly StateChange[], now: number): void {
    if (changed.length === 0) return;
    const u = this.presence.users.get(user);
    if (!u) return;
    const state = publicState(u.state, u.publicKeys);
    const visible = publicChanges(changed, u.publicKeys);
    for (const channel of this.presence.channelsOf(user)) {
      if (!this.configs.effective(channel).notify_state) continue;
      this.send(channel, null, { type: 'state', channel, user, state, changed: visible, time: now, id: eventId() });
    }
  }

  send(channel: string, exceptUser: string | null, push: Record<string, unknown>): void {
    try {
      this.director.channelEvent(channel, exceptUser, Buffer.from(JSON.stringify(push)));
    } catch (err) {
      this.log.warn({ channel, err: (err as Error).message }, 'channel event not sent');
    }
  }

  publicStateOf(user: string): Record<string, unknown> {
    const u = this.presence.users.get(user);
    return u ? publicState(u.state, u.publicKeys) : {};
  }

  // --- control -------------------------------------------------------------------

  /** Tell the edge holding each connection to act on it. */
  controlConnections(op: string, ids: readonly string[], extra: Record<string, unknown> = {}): void {
    const byEdge = new Map<string, string[]>();
    for (const id of ids) {
      const edge = this.presence.conns.get(id)?.edge;
      if (!edge) continue;
      let list = byEdge.get(edge);
      if (!list) byEdge.set(edge, (list = []));
      list.push(id);
    }
    for (const [edge, conns] of byEdge) this.director.control(edgeTopic(edge), { op, conns, ...extra });
  }
}
