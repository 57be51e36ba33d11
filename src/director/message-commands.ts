/**
 * channelstream's `/message` answered by the director, for items the edge
 * validated with channelstream's schemas (compat/schemas.ts):
 *  - POST publishes each item to its channel (sequenced, native history when
 *    the channel keeps it) or, with `pm_users`, to those users' connections
 *    (only those in `channel` when one is named);
 *  - PATCH edits and DELETE deletes, sent as unsequenced channel events (to
 *    the users for private ones), and applied to what is stored: channelstream's
 *    history view, the native history ring and the catch-up frames.
 * The message object travels as the push's data: channelstream clients get
 * it without the delivery keys (compat/shape.ts), native subscribers see it
 * in `data`.
 */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import type { ClusterState } from './cluster-state.js';
import { eventId, preciseNow } from './cluster-state.js';
import type { Body } from './body.js';
import type { HistoryEntry } from './history.js';
import { channel as channelField } from './body.js';

const MAX_ITEMS = 1000;
const MAX_PM_USERS = 1000;
/** The keys of a stored message an edit may change (channelstream's MSG_EDITABLE_KEYS). */
const EDITABLE = ['uuid', 'timestamp', 'user', 'message', 'edited'];

type Op = 'post' | 'edit' | 'delete';

interface Item {
  body: Body;
  channel: string | null;
  pmUsers: string[];
}

function item(raw: unknown): Item {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'each message must be an object');
  const body = raw as Body;
  if (typeof body['uuid'] !== 'string') throw new TidingsError(ErrorCodes.MISSING_FIELD, 'uuid must be a string');
  const channel = body['channel'] === null || body['channel'] === undefined ? null : channelField(body);
  const pmUsers = body['pm_users'] === undefined ? [] : (body['pm_users'] as unknown[]);
  if (!Array.isArray(pmUsers) || pmUsers.length > MAX_PM_USERS || !pmUsers.every((u) => typeof u === 'string')) {
    throw new TidingsError(ErrorCodes.MISSING_FIELD, `pm_users must be a list of at most ${MAX_PM_USERS} users`);
  }
  return { body, channel, pmUsers: pmUsers as string[] };
}

/** What a channelstream client is sent (the edge drops the delivery keys, using exclude_users first). */
function pushData(msg: Body): Body {
  const data: Body = { ...msg };
  delete data['pm_users'];
  delete data['no_history'];
  if (!Array.isArray(data['exclude_users']) || data['exclude_users'].length === 0) delete data['exclude_users'];
  return data;
}

export function registerMessageCommands(state: ClusterState): void {
  state.director.handlers.register('cs_message', (b) => {
    const op = b['op'];
    if (op !== 'post' && op !== 'edit' && op !== 'delete') throw new TidingsError(ErrorCodes.MISSING_FIELD, 'op must be post, edit or delete');
    const list = b['messages'];
    if (!Array.isArray(list) || list.length > MAX_ITEMS) throw new TidingsError(ErrorCodes.MISSING_FIELD, `messages must be a list of at most ${MAX_ITEMS}`);
    const items = list.map(item);
    // Sequenced in order; with the redis engine the reply waits until every message is stored.
    const pending: Promise<unknown>[] = [];
    for (const i of items) {
      const r = send(state, op, i);
      if (r) pending.push(r);
    }
    const out = { sent: items.length };
    return pending.length > 0 ? Promise.all(pending).then(() => out) : out;
  });
}

function send(state: ClusterState, op: Op, item: Item): Promise<unknown> | void {
  if (op === 'post') return post(state, item);
  alter(state, op, item);
}

/** channelstream's pass_message: the stored object gains catchup, edited and type. */
function post(state: ClusterState, item: Item): Promise<unknown> | void {
  const d = state.director;
  const msg: Body = { ...item.body, catchup: false, edited: null, type: 'message' };
  const sender = typeof msg['user'] === 'string' ? msg['user'] : null;
  const json = JSON.stringify(pushData(msg));
  const noHistory = msg['no_history'] === true;
  if (item.channel !== null) {
    const cfg = state.configs.effective(item.channel);
    if (cfg.store_history && !noHistory) state.csHistory.add(item.channel, msg, cfg.history_size, cfg.history_ttl * 1000, Date.now());
    if (item.pmUsers.length > 0) {
      // Private in a channel: to the users' connections that are in it (edges check), never to the channel's other listeners.
      for (const u of item.pmUsers) d.publishUser(u, json, sender);
      return;
    }
    const r = d.publishChannel(item.channel, json, sender, noHistory);
    return r instanceof Promise ? r : undefined;
  }
  for (const u of item.pmUsers) d.publishUser(u, json, sender);
}

/** An edit or a delete: change what is stored, then tell the clients. */
function alter(state: ClusterState, op: 'edit' | 'delete', item: Item): void {
  const d = state.director;
  const uuid = item.body['uuid'] as string;
  const changes: Body = {};
  for (const k of EDITABLE) if (k in item.body) changes[k] = item.body[k];
  const apply = (m: Body): void => void Object.assign(m, changes);
  const event: Body = { ...item.body, type: op === 'edit' ? 'message:edit' : 'message:delete' };
  const json = JSON.stringify(pushData(event));
  if (item.channel !== null) {
    if (op === 'edit') {
      state.csHistory.edit(item.channel, uuid, apply);
      editNativeHistory(state, item.channel, uuid, apply);
    } else {
      state.csHistory.delete(item.channel, uuid);
      deleteFromNativeHistory(state, item.channel, uuid);
    }
    state.catchup.amend('channel', item.channel, uuid, op === 'edit' ? apply : null);
    if (item.pmUsers.length > 0) {
      for (const u of item.pmUsers) {
        state.catchup.amend('user', u, uuid, op === 'edit' ? apply : null);
        d.publishUser(u, json, null);
      }
      return;
    }
    state.send(item.channel, null, { type: op, channel: item.channel, time: preciseNow(), id: eventId(), data: JSON.parse(json) as unknown });
    return;
  }
  for (const u of item.pmUsers) {
    state.catchup.amend('user', u, uuid, op === 'edit' ? apply : null);
    d.publishUser(u, json, null);
  }
}

/**
 * The stored message whose data carries this uuid (and passes `want`), newest
 * first, parsed. A byte search skips the messages that cannot match, so an
 * edit does not parse the whole history.
 */
function storedByUuid(state: ClusterState, channel: string, uuid: string, want: (data: Body) => boolean): { entry: HistoryEntry; push: Body; data: Body } | undefined {
  const cs = state.director.channels.get(channel);
  if (!cs) return undefined;
  const needle = Buffer.from(JSON.stringify(uuid));
  let push: Body | null = null;
  const entry = cs.history.findNewest((bytes) => {
    if (!bytes.includes(needle)) return false;
    push = JSON.parse(bytes.toString('utf8')) as Body;
    const data = push['data'] as Body | null;
    return !!data && typeof data === 'object' && data['uuid'] === uuid && want(data);
  });
  if (!entry || !push) return undefined;
  return { entry, push, data: (push as Body)['data'] as Body };
}

/**
 * A delete leaves a tombstone in place of the stored message in the native
 * history: its offset stays (recovery needs consecutive offsets) but the text
 * is gone and `deleted: true` says why.
 */
function deleteFromNativeHistory(state: ClusterState, channel: string, uuid: string): void {
  const found = storedByUuid(state, channel, uuid, () => true);
  if (!found) return;
  found.push['data'] = { uuid, deleted: true };
  found.entry.owner?.replace(found.entry, Buffer.from(JSON.stringify(found.push)));
}

/** An edit changes the stored message too, so later history readers see the edited text. */
function editNativeHistory(state: ClusterState, channel: string, uuid: string, apply: (m: Body) => void): void {
  const found = storedByUuid(state, channel, uuid, (data) => data['type'] === 'message');
  if (!found) return;
  apply(found.data);
  found.entry.owner?.replace(found.entry, Buffer.from(JSON.stringify(found.push)));
}
