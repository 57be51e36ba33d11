/**
 * Server-side connection management, answered by the director for the whole
 * cluster: register a connection for a user with its channels before its
 * client connects (`conn_connect`), let an edge claim it (`conn_attach`),
 * subscribe, unsubscribe or disconnect it (or all of a user's connections)
 * on whichever edge holds it. The director updates presence at once and
 * sends a control message to the edge that holds the connection.
 *
 * Registered (channelstream) connections keep frames while no client holds
 * them and until their edge confirms its subscriptions live (`conn_catchup`,
 * see catchup.ts); the frames then go down the edge's topic, in order with
 * the pushes, followed by a ready marker.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { edgeTopic } from '../cluster/topics.js';
import type { ClusterState } from './cluster-state.js';
import { applyState, fitsStateLimit, MAX_STATE_KEYS, publicState } from './user-state.js';
import { channelList, obj, optStr, str, stringList, user, type Body } from './body.js';
import { writableState, type PresenceChange } from './presence.js';

const MAX_CHANNELS = 1000;
const CONN_ID_RE = /^[A-Za-z0-9_.:/\-]{1,128}$/;

function connId(b: Body, name = 'conn_id'): string {
  const v = b[name];
  if (typeof v !== 'string' || !CONN_ID_RE.test(v)) throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be 1-128 characters of A-Z a-z 0-9 _ . : / -`);
  return v;
}

function known(state: ClusterState, id: string) {
  const rec = state.presence.conns.get(id);
  if (!rec) throw new TidingsError(ErrorCodes.UNKNOWN_CONNECTION, id);
  return rec;
}

export function registerConnectionCommands(state: ClusterState): void {
  const h = state.director.handlers;
  h.register('conn_connect', (b) => connect(state, b));
  h.register('conn_attach', (b) => attach(state, b));
  h.register('conn_subscribe', (b) => subscribe(state, b));
  h.register('conn_unsubscribe', (b) => unsubscribe(state, b));
  h.register('conn_disconnect', (b) => disconnect(state, b));
  h.register('conn_catchup', (b) => catchup(state, b));
  h.register('conn_info', (b) => {
    const rec = known(state, connId(b));
    return { conn_id: rec.id, user: rec.user, edge: rec.edge, channels: [...rec.channels].sort(), registered: rec.registered };
  });
}

/**
 * conn_connect {username, conn_id?, channels?, fresh_user_state?, user_state?,
 * state_public_keys?, channel_configs?} -> {conn_id, state, username, public_state, channels}
 */
function connect(state: ClusterState, b: Body): unknown {
  const username = user(b, 'username');
  const id = b['conn_id'] === undefined || b['conn_id'] === null ? randomUUID() : connId(b);
  const channels = channelList(b, 'channels', MAX_CHANNELS, false).sort();
  const fresh = obj(b, 'fresh_user_state');
  const update = obj(b, 'user_state');
  const keys = stringList(b, 'state_public_keys', 1000);
  const configs = obj(b, 'channel_configs') ?? {};
  const now = Date.now();
  const p = state.presence;
  const isNewUser = !p.users.has(username);
  const current = p.users.get(username)?.state ?? {};
  if (!fitsStateLimit(current, { ...(isNewUser ? fresh : {}), ...update })) {
    throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `a user state holds at most ${MAX_STATE_KEYS} keys`);
  }
  const rec = p.register(id, username, now);
  const u = p.user(username, now);
  if (isNewUser && fresh) applyState(writableState(u), fresh);
  if (keys !== null) u.publicKeys = keys;
  if (update) applyState(writableState(u), update);
  u.lastActive = now;
  const changes: PresenceChange[] = [];
  const added: string[] = [];
  for (const ch of channels) {
    state.createChannel(ch, configs[ch], now);
    if (!rec.channels.has(ch)) added.push(ch);
    const c = p.join(id, ch);
    if (c) changes.push(c);
  }
  state.announce(changes, now);
  if (rec.edge && added.length > 0) state.controlConnections('subscribe', [id], { channels: added });
  return { conn_id: id, state: u.state, username, public_state: publicState(u.state, u.publicKeys), channels: [...rec.channels].sort() };
}

/**
 * conn_attach {conn_id, edge, instance} -> {conn_id, user, channels}: an
 * edge's client (websocket or long poll) connected with this id. Until the
 * edge confirms each channel with conn_catchup, its frames are kept.
 */
function attach(state: ClusterState, b: Body): unknown {
  const id = connId(b);
  const edge = str(b, 'edge');
  const instance = str(b, 'instance');
  const rec = known(state, id);
  if (!rec.registered) throw new TidingsError(ErrorCodes.UNKNOWN_CONNECTION, `${id} was not registered with /connect`);
  // The same id connecting again elsewhere replaces the older client (the edge replaces one of its own itself).
  if (rec.edge !== null && rec.instance !== instance) state.director.control(edgeTopic(rec.edge), { op: 'disconnect', conns: [id], replaced: true });
  state.attaching = id;
  try {
    state.presence.attach(id, rec.user, edge, instance, Date.now());
  } finally {
    state.attaching = null;
  }
  state.catchup.attached(rec);
  return { conn_id: id, user: rec.user, channels: [...rec.channels].sort() };
}

/**
 * conn_catchup {conn_id, instance, channels, user} -> {frames}: the edge
 * holding the connection has these channels (and the user's stream, when
 * `user`) live. Their kept frames go down the edge's topic, each as a
 * `cs_frame` control, then `cs_ready`: the edge shows the client nothing of
 * those streams before the marker, and everything after it.
 */
function catchup(state: ClusterState, b: Body): unknown {
  const id = connId(b);
  const instance = str(b, 'instance');
  const channels = channelList(b, 'channels', MAX_CHANNELS, false);
  const user = b['user'] === true;
  const token = typeof b['token'] === 'string' ? b['token'].slice(0, 64) : null;
  const rec = known(state, id);
  if (rec.instance !== instance || rec.edge === null) throw new TidingsError(ErrorCodes.UNKNOWN_CONNECTION, `${id} is not held by this edge`);
  // The edge's view may lag the director's: a subscribe or an unsubscribe control can pass the attach reply on its way.
  const current = channels.filter((c) => rec.channels.has(c));
  const stale = channels.filter((c) => !rec.channels.has(c));
  const frames = state.catchup.confirm(id, current, user);
  const topic = edgeTopic(rec.edge);
  for (const f of frames) {
    state.director.control(topic, { op: 'cs_frame', conn: id, catchup: f.catchup, except: f.except, push: JSON.parse(f.push.toString('utf8')) as unknown });
  }
  state.director.control(topic, { op: 'cs_ready', conn: id, channels: current, user, token });
  if (stale.length > 0) state.director.control(topic, { op: 'unsubscribe', conns: [id], channels: stale });
  if (user) {
    // The first confirmation lists every stream the edge holds: any channel it lacks, it has yet to join.
    const missing = state.catchup.unconfirmed(id, rec.channels);
    if (missing.length > 0) state.director.control(topic, { op: 'subscribe', conns: [id], channels: missing });
  }
  return { frames: frames.length };
}

/** conn_subscribe {conn_id, channels, channel_configs?} -> {conn_id, channels, subscribed_to} */
function subscribe(state: ClusterState, b: Body): unknown {
  const id = connId(b);
  const channels = channelList(b, 'channels', MAX_CHANNELS, true);
  const configs = obj(b, 'channel_configs') ?? {};
  const rec = known(state, id);
  const now = Date.now();
  const changes: PresenceChange[] = [];
  const subscribedTo: string[] = [];
  for (const ch of channels) {
    state.createChannel(ch, configs[ch], now);
    if (rec.channels.has(ch)) continue;
    const c = state.presence.join(id, ch);
    if (c) changes.push(c);
    subscribedTo.push(ch);
  }
  state.announce(changes, now);
  if (subscribedTo.length > 0) state.controlConnections('subscribe', [id], { channels: subscribedTo });
  return { conn_id: id, channels: [...rec.channels].sort(), subscribed_to: subscribedTo.sort() };
}

/** conn_unsubscribe {conn_id, channels} -> {conn_id, channels, unsubscribed_from} */
function unsubscribe(state: ClusterState, b: Body): unknown {
  const id = connId(b);
  const channels = channelList(b, 'channels', MAX_CHANNELS, true);
  const rec = known(state, id);
  const now = Date.now();
  const changes: PresenceChange[] = [];
  const from: string[] = [];
  for (const ch of channels) {
    if (!rec.channels.has(ch)) continue;
    const c = state.presence.leave(id, ch);
    if (c) changes.push(c);
    from.push(ch);
  }
  state.announce(changes, now);
  if (from.length > 0) state.controlConnections('unsubscribe', [id], { channels: from });
  return { conn_id: id, channels: [...rec.channels].sort(), unsubscribed_from: from.sort() };
}

/** conn_disconnect {conn_id} | {user} -> {disconnected: [ids]}: close on the edge and leave presence. */
function disconnect(state: ClusterState, b: Body): unknown {
  let ids: string[];
  if (b['conn_id'] !== undefined && b['conn_id'] !== null) {
    const id = connId(b);
    ids = state.presence.conns.has(id) ? [id] : [];
  } else if (optStr(b, 'user') !== null) {
    const name = user(b);
    ids = [...(state.presence.users.get(name)?.conns ?? [])];
  } else {
    throw new TidingsError(ErrorCodes.MISSING_FIELD, 'conn_id or user is required');
  }
  state.controlConnections('disconnect', ids);
  const changes: PresenceChange[] = [];
  for (const id of ids) changes.push(...state.presence.remove(id));
  state.announce(changes, Date.now());
  return { disconnected: ids.sort() };
}
