/**
 * Director commands for presence, user state, channel configs, channel info
 * and the debug views. Edges report their connections with `edge_report`
 * (batched joins and leaves; an empty report is the heartbeat).
 */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { carriedChannelProblem, codePointCompare } from '../protocol/names.js';
import { channelstreamObject, csTimestamp } from '../compat/shape.js';
import type { ClusterState } from './cluster-state.js';
import { mergeChannelConfig, type ChannelConfig } from './channel-config.js';
import { applyState, fitsStateLimit, MAX_STATE_KEYS, publicState } from './user-state.js';
import { bool, channel, channelList, obj, str, stringList, user, type Body } from './body.js';
import { writableState, type SnapshotEntry, type PresenceChange } from './presence.js';

const MAX_EVENTS = 20_000;
const MAX_CHANNELS_PER_REQUEST = 10_000;
const MAX_PUBLIC_KEYS = 1000;
/** Newest messages of a channel's history listed by /info (native channels may keep far more). */
const INFO_HISTORY = 1000;

export function registerStateCommands(state: ClusterState): void {
  const h = state.director.handlers;
  h.register('edge_report', (b) => edgeReport(state, b));
  h.register('presence', (b) => {
    const ch = channel(b);
    return {
      channel: ch,
      users: state.presence.usersIn(ch).map((u) => ({ user: u.user, connections: u.connections, state: state.publicStateOf(u.user) })),
    };
  });
  h.register('presence_stats', (b) => {
    const ch = channel(b);
    return { channel: ch, ...state.presence.stats(ch) };
  });
  h.register('user_state', (b) => userState(state, b));
  h.register('channel_config', (b) => channelConfig(state, b));
  h.register('channels_info', (b) => channelsInfo(state, b));
  h.register('debug_subscribers', (b) => debugSubscribers(state, b));
}

function edgeReport(state: ClusterState, b: Body): unknown {
  const edge = str(b, 'edge');
  const instance = str(b, 'instance');
  const now = Date.now();
  const p = state.presence;
  const known = p.touchInstance(instance, edge, now);
  const changes: PresenceChange[] = [];
  const snapshot = b['snapshot'];
  if (snapshot !== undefined) {
    if (!Array.isArray(snapshot) || snapshot.length > 1_000_000) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'snapshot must be a list');
    const entries: SnapshotEntry[] = snapshot.map((e: Body) => ({ conn: str(e, 'conn'), user: e['user'] === null ? null : user(e), channels: channelList(e, 'channels', 100_000, false) }));
    const attaching = Array.isArray(b['attaching']) ? new Set(b['attaching'].filter((x): x is string => typeof x === 'string')) : undefined;
    changes.push(...p.sync(instance, edge, entries, now, attaching));
  }
  const events = b['events'] ?? [];
  if (!Array.isArray(events) || events.length > MAX_EVENTS) throw new TidingsError(ErrorCodes.MISSING_FIELD, `events must be a list of at most ${MAX_EVENTS}`);
  for (const e of events as Body[]) {
    if (typeof e !== 'object' || e === null) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'each event must be an object');
    const conn = str(e, 'conn');
    switch (e['op']) {
      case 'attach':
        p.attach(conn, e['user'] === null ? null : user(e), edge, instance, now);
        break;
      case 'join': {
        const c = p.join(conn, channel(e));
        if (c) changes.push(c);
        break;
      }
      case 'leave': {
        const c = p.leave(conn, channel(e));
        if (c) changes.push(c);
        break;
      }
      case 'close':
        // A long poll ends between requests: its client has the presence time-to-live to poll again;
        // a websocket that closed has the reattach window (channelstream parts it within about a second).
        changes.push(...p.detach(conn, instance, now, e['poll'] === true ? null : state.reattachMs));
        break;
      default:
        throw new TidingsError(ErrorCodes.MISSING_FIELD, 'op must be attach, join, leave or close');
    }
  }
  if (b['goodbye'] === true) {
    // The edge is stopping (its clients were closed): no need to wait for presence_ttl.
    changes.push(...p.dropInstance(instance, now));
    state.log.info({ edge }, `edge ${edge} stopped: its connections left presence`);
    state.announce(changes, now);
    return { resync: false };
  }
  state.announce(changes, now);
  return { resync: !known && snapshot === undefined };
}

function userState(state: ClusterState, b: Body): unknown {
  const name = user(b);
  const u = state.presence.users.get(name);
  if (!u) throw new TidingsError(ErrorCodes.NOT_FOUND, `user ${JSON.stringify(name)} not found`);
  const keys = stringList(b, 'state_public_keys', MAX_PUBLIC_KEYS);
  const update = obj(b, 'user_state');
  if (!fitsStateLimit(u.state, update)) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `a user state holds at most ${MAX_STATE_KEYS} keys`);
  if (keys !== null) u.publicKeys = keys;
  const changed = update ? applyState(writableState(u), update) : [];
  const now = Date.now();
  u.lastActive = now;
  state.announceState(name, changed, now);
  return { user_state: u.state, changed_state: changed, public_keys: u.publicKeys };
}

function channelConfig(state: ClusterState, b: Body): unknown {
  const channels = obj(b, 'channels');
  if (!channels || Object.keys(channels).length === 0) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'channels must be an object {name: config} with at least one channel');
  if (Object.keys(channels).length > MAX_CHANNELS_PER_REQUEST) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${MAX_CHANNELS_PER_REQUEST} channels per request`);
  // Validate every entry before changing anything.
  for (const [name, raw] of Object.entries(channels)) {
    const problem = carriedChannelProblem(name);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, `${name.slice(0, 64)}: ${problem}`);
    mergeChannelConfig(state.configs.channelstream, raw, `channels.${name}`);
  }
  const now = Date.now();
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(channels)) {
    const cfg = state.configs.reconfigure(name, raw);
    state.applyHistory(name, cfg, now);
    out[name] = cfg;
  }
  return { channels: out };
}

/** The settings channelstream reports: its six keys (Tidings' history_ttl only on the native API). */
function csSettings(cfg: ChannelConfig): Body {
  return {
    notify_presence: cfg.notify_presence,
    store_history: cfg.store_history,
    history_size: cfg.history_size,
    broadcast_presence_with_user_lists: cfg.broadcast_presence_with_user_lists,
    notify_state: cfg.notify_state,
    store_frames: cfg.store_frames,
  };
}

export interface InfoOptions {
  includeHistory: boolean;
  includeUsers: boolean;
  includeConnections: boolean;
  /** Exactly channelstream's chan_info (its history view, its settings, its total_users); else the native one. */
  compat: boolean;
}

/** channelstream's chan_info for one channel. */
export function chanInfo(state: ClusterState, name: string, o: InfoOptions): Body {
  const now = Date.now();
  const cs = state.director.channels.get(name);
  const users = state.presence.usersIn(name);
  const cfg = state.configs.effective(name);
  let history: unknown[] = [];
  if (o.includeHistory && o.compat) history = state.csHistory.list(name, cfg.store_history ? cfg.history_size : 0, cfg.history_ttl * 1000, now);
  else if (o.includeHistory && cs) {
    history = cs.history
      .newest(INFO_HISTORY, now)
      .map((e) => JSON.parse(e.push.toString('utf8')) as Body)
      .filter((p) => (p['data'] as Body | null)?.['deleted'] !== true) // tombstones of deleted messages
      .map((p) => channelstreamObject(p))
      .filter((x) => x !== null);
  }
  const names = o.includeUsers ? users.map((u) => u.user).sort(codePointCompare) : [];
  const info: Body = {
    // A channel listed here has state, or members (then its state is made now, once).
    uuid: (cs ?? state.director.channels.getOrCreate(name, now)).uuid,
    name,
    long_name: null,
    settings: o.compat ? csSettings(cfg) : cfg,
    history,
    last_active: csTimestamp(cs?.lastActive ?? now),
    total_connections: users.reduce((n, u) => n + u.connections.length, 0),
    // channelstream counts the users it lists: 0 without include_users.
    total_users: o.compat ? names.length : users.length,
    users: names,
  };
  if (o.includeConnections && !o.compat) info['connections'] = Object.fromEntries(users.map((u) => [u.user, u.connections]));
  return info;
}

/**
 * channels_info {channels?, include_history?, include_users?, include_connections?,
 * exclude_channels?, return_public_state?, compat?} -> {channels: {name: chan_info}, users: [{user, state}]}
 * Native: no channels (or an empty list) means every channel. compat
 * (channelstream's /info): `channels` null or absent means every channel,
 * an empty list none.
 */
export function channelsInfo(state: ClusterState, b: Body): Body {
  const compat = b['compat'] === true;
  const wanted = channelList(b, 'channels', MAX_CHANNELS_PER_REQUEST, false);
  const exclude = new Set(channelList(b, 'exclude_channels', MAX_CHANNELS_PER_REQUEST, false));
  const o: InfoOptions = {
    includeHistory: bool(b, 'include_history', true),
    includeUsers: bool(b, 'include_users', true),
    includeConnections: bool(b, 'include_connections', false),
    compat,
  };
  const returnPublic = bool(b, 'return_public_state', false);
  const all = compat ? b['channels'] === undefined || b['channels'] === null : wanted.length === 0;
  let names: string[];
  if (!all) names = wanted;
  else {
    const every = new Set<string>([...state.director.channels.names(), ...state.presence.channelNames()]);
    if (every.size > MAX_CHANNELS_PER_REQUEST) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `more than ${MAX_CHANNELS_PER_REQUEST} channels: name the channels you want`);
    names = [...every].sort(codePointCompare);
  }
  const channels: Body = {};
  const listed = new Set<string>();
  for (const name of names) {
    if (exclude.has(name)) continue;
    // channelstream creates nothing on /info; unknown channels are left out.
    if (!state.director.channels.get(name) && !state.presence.hasMembers(name)) continue;
    const info = chanInfo(state, name, o);
    channels[name] = info;
    for (const u of info['users'] as string[]) listed.add(u);
  }
  const users = [...listed].sort(codePointCompare).map((name) => {
    const u = state.presence.users.get(name);
    const st = u ? (returnPublic ? publicState(u.state, u.publicKeys) : u.state) : {};
    return { user: name, state: st };
  });
  return { channels, users };
}

/** Seth-Pusher's debug shape, for the whole cluster: every connection per channel. */
function debugSubscribers(state: ClusterState, b: Body): unknown {
  const only = b['channel'];
  const subscribers: Record<string, string[]> = {};
  let count = 0;
  if (only !== undefined && only !== null) {
    const ch = channel(b);
    subscribers[ch] = state.presence.connectionsIn(ch);
    count = subscribers[ch].length;
  } else {
    const names = [...state.presence.channelNames()].sort();
    if (names.length > MAX_CHANNELS_PER_REQUEST) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `more than ${MAX_CHANNELS_PER_REQUEST} channels: ask for one channel`);
    const seen = new Set<string>();
    for (const ch of names) {
      subscribers[ch] = state.presence.connectionsIn(ch);
      for (const c of subscribers[ch]) seen.add(c);
    }
    count = seen.size;
  }
  return { subscriber_count: count, subscribers };
}

