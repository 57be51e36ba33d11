/**
 * The director's cluster-wide channel state beside the sequencer: presence,
 * user state and channel configs, the events they send down (join, leave,
 * state) and the expiry of silent edges. Commands reach it through
 * state-commands.ts and connection-commands.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { edgeTopic } from '../cluster/topics.js';
import type { Director } from './director.js';
import { ChannelConfigs, channelstreamDefaults, historyLimits, nativeDefaults, type ChannelConfig } from './channel-config.js';
import { PresenceState, type ConnRecord, type PresenceChange } from './presence.js';
import { MirroredPresence } from './state-mirror.js';
import type { HistoryLimits } from './history.js';
import { publicChanges, publicState, type StateChange } from './user-state.js';
import { CatchupQueues } from './catchup.js';
import { CsHistory } from './cs-history.js';

/** Most connections the director tracks (registered and attached). */
const MAX_CONNECTIONS = 2_000_000;
/** How often silent edges and unclaimed connections are looked for. */
const EXPIRY_CHECK_MS = 250;
/** Users with no connection keep their state this long. */
const USER_IDLE_MS = 10 * 60_000;
/** Bytes of catch-up frames the director holds for all connections together. */
const MAX_TOTAL_CATCHUP_BYTES = 256 * 1024 * 1024;

/** Ids of events (presence, state, edits): standard UUIDs, as channelstream's. */
export function eventId(): string {
  return randomUUID();
}

/** Now in milliseconds with a microsecond fraction (channelstream's timestamps are microseconds). */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

export class ClusterState {
  /** With the redis engine, a presence that reports its changes to the state mirror (state-mirror.ts). */
  readonly presence: PresenceState;
  readonly configs: ChannelConfigs;
  readonly ttlMs: number;
  /** How long a registered connection whose websocket closed waits for its client (reattach_window). */
  readonly reattachMs: number;
  /** Frames kept for registered connections no client holds (channelstream catch-up). */
  readonly catchup: CatchupQueues;
  /** channelstream's view of channel history (private messages and delivery keys included). */
  readonly csHistory = new CsHistory();
  private timer: NodeJS.Timeout | null = null;
  private readonly expired: Counter;
  private readonly catchupOverflows: Counter;
  /** The id conn_attach is attaching, while it does (its presence change is asked for, not reported). */
  attaching: string | null = null;
  /** Told of edge instances whose presence expired (a dead node), so state kept per edge (WAMP registrations) goes too. */
  readonly expiredInstanceHooks: Array<(instances: readonly string[]) => void> = [];

  constructor(
    readonly director: Director,
    readonly log: Logger,
    registry: Registry,
  ) {
    this.presence = director.engine.kind === 'memory' ? new PresenceState(MAX_CONNECTIONS) : new MirroredPresence(MAX_CONNECTIONS);
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
    this.catchupOverflows = new Counter({
      name: 'tidings_director_catchup_overflow_total',
      help: 'Registered connections dropped because the frames kept for them while away passed catchup_max_bytes (or the director-wide bound)',
      registers: [registry],
    });
    const c = director.config;
    this.ttlMs = c.presence_ttl * 1000;
    this.reattachMs = c.reattach_window * 1000;
    this.configs = new ChannelConfigs(nativeDefaults(c.history_size, c.history_ttl), channelstreamDefaults(c.history_ttl));
    const catchup = new CatchupQueues(
      c.catchup_max_bytes,
      MAX_TOTAL_CATCHUP_BYTES,
      (ch) => this.configs.effective(ch).store_frames,
      (rec) => this.dropOverflowed(rec),
    );
    this.catchup = catchup;
    new Gauge({
      name: 'tidings_director_catchup_bytes',
      help: 'Bytes of frames kept for registered connections no client holds',
      registers: [registry],
      collect() {
        this.set(catchup.totalBytes);
      },
    });
    this.presence.listener = {
      joined: (rec, ch) => catchup.joined(rec, ch),
      left: (rec, ch) => catchup.left(rec, ch),
      detached: (rec) => catchup.away(rec),
      removed: (rec) => catchup.removed(rec),
      reattached: (rec) => {
        if (rec.id === this.attaching) return; // conn_attach: the edge confirms on its own
        // An edge reported a connection the director had let go (a lost report, a snapshot race):
        // its frames are kept again until the edge confirms its streams anew.
        catchup.attached(rec);
        if (rec.edge) this.director.control(edgeTopic(rec.edge), { op: 'cs_reconfirm', conn: rec.id });
      },
    };
    director.pushObservers.push((kind, name, push, except) => catchup.onPush(kind, name, push, except));
    director.channelHolds.push((ch) => this.presence.hasMembers(ch) || this.csHistory.has(ch));
    // Every append carries the channel's own history bounds (the redis engine applies them per call).
    const channelBytes = c.history_channel_bytes;
    const nativeLimits: HistoryLimits = Object.freeze(historyLimits(this.configs.native, channelBytes));
    director.historyLimits = (ch) => {
      const cfg = this.configs.effective(ch);
      return cfg === this.configs.native ? nativeLimits : historyLimits(cfg, channelBytes);
    };
    director.collectors.push((now) => this.collect(now));
  }

  /** A connection's catch-up queue passed its bound: drop the connection, as channelstream's collector would. */
  private dropOverflowed(rec: ConnRecord): void {
    this.catchupOverflows.inc();
    this.log.warn({ conn: rec.id, user: rec.user }, 'catch-up frames of a connection passed catchup_max_bytes; connection dropped');
    // Deferred: this runs inside a push being sent; presence changes send pushes of their own.
    queueMicrotask(() => {
      if (this.presence.conns.get(rec.id) !== rec) return;
      this.controlConnections('disconnect', [rec.id]);
      this.announce(this.presence.remove(rec.id), Date.now());
    });
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
    this.csHistory.expire(now, (ch) => {
      const cfg = this.configs.effective(ch);
      return { size: cfg.store_history ? cfg.history_size : 0, ttlMs: cfg.history_ttl * 1000 };
    });
    // A config lives as long as its channel's state (collected when idle, empty and unheld).
    for (const name of [...this.configs.names()]) {
      if (!this.director.channels.get(name) && !this.presence.hasMembers(name)) this.configs.forget(name);
    }
    this.presence.collectUsers(now, USER_IDLE_MS);
  }

  // --- channel configs --------------------------------------------------------------

  /** Make the channel's history follow its config (creating the channel's state). */
  applyHistory(channel: string, cfg: ChannelConfig, now: number): void {
    // (With the redis engine the bounds travel with each append, from director.historyLimits.)
    const state = this.director.channels.getOrCreate(channel, now);
    state.history.setLimits(historyLimits(cfg, this.director.config.history_channel_bytes), now);
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
  /** `_now` is kept for callers; event times are taken with microseconds when sent. */
  announce(changes: readonly PresenceChange[], _now: number): void {
    for (const ch of changes) {
      const cfg = this.configs.effective(ch.channel);
      if (!cfg.notify_presence) continue;
      const push: Record<string, unknown> = { type: ch.action, channel: ch.channel, user: ch.user };
      if (ch.action === 'join') push['state'] = this.publicStateOf(ch.user);
      push['time'] = preciseNow();
      push['id'] = eventId();
      if (cfg.broadcast_presence_with_user_lists) {
        push['users'] = this.presence.usersIn(ch.channel).map((u) => ({ user: u.user, state: this.publicStateOf(u.user) }));
      }
      this.send(ch.channel, ch.user, push);
    }
  }

  /** Send a state change to the user's channels configured to notify state. */
  announceState(user: string, changed: readonly StateChange[], _now: number): void {
    if (changed.length === 0) return;
    const u = this.presence.users.get(user);
    if (!u) return;
    const state = publicState(u.state, u.publicKeys);
    const visible = publicChanges(changed, u.publicKeys);
    for (const channel of this.presence.channelsOf(user)) {
      if (!this.configs.effective(channel).notify_state) continue;
      this.send(channel, null, { type: 'state', channel, user, state, changed: visible, time: preciseNow(), id: eventId() });
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
