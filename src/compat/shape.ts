/**
 * channelstream's client-facing objects, made from Tidings' native pushes.
 * Messages posted through channelstream's `/message` carry the whole
 * channelstream object as their `data`, so they pass through with only the
 * delivery keys removed; native publishes are wrapped in a message object.
 * Key sets are channelstream 0.7.1's exactly (channelstream/channel.py,
 * operations.py): a message has no `catchup` key on edits and deletes, a
 * presence event has `users` and `state`, and so on.
 */
import { createHash } from 'node:crypto';
import { isoformat } from './schema.js';

export type Obj = Record<string, unknown>;

/** channelstream's timestamps: Python's naive UTC `isoformat()` (microseconds, omitted when zero). */
export function csTimestamp(ms: number): string {
  return isoformat(ms);
}

/**
 * channelstream writes frames with its own JSON encoder, which spells an
 * aware UTC datetime `...Z` (its HTTP responses say `+00:00`).
 */
function frameTime(v: unknown): unknown {
  return typeof v === 'string' && v.endsWith('+00:00') ? `${v.slice(0, -6)}Z` : v;
}

/** Whether a message's data is an object posted through channelstream's `/message`. */
export function isChannelstreamMessage(data: unknown): data is Obj {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return false;
  const d = data as Obj;
  return d['type'] === 'message' && typeof d['uuid'] === 'string' && typeof d['timestamp'] === 'string' && 'catchup' in d && 'edited' in d;
}

function isEditOrDelete(data: unknown): data is Obj {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return false;
  const t = (data as Obj)['type'];
  return (t === 'message:edit' || t === 'message:delete') && typeof (data as Obj)['uuid'] === 'string';
}

/** Keys that steer delivery and are never shown to clients (channelstream deletes them before sending). */
const DELIVERY_KEYS = new Set(['pm_users', 'exclude_users', 'no_history']);

function forClient(o: Obj): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) {
    if (DELIVERY_KEYS.has(k)) continue;
    out[k] = k === 'timestamp' || k === 'edited' ? frameTime(v) : v;
  }
  return out;
}

/**
 * A standard UUID for a native message shown to channelstream clients,
 * the same on every edge: derived from the channel, epoch and offset
 * (name-based, SHA-1, as UUID version 5).
 */
export function nativeMessageUuid(channel: string, epoch: string, offset: number): string {
  const h = createHash('sha1').update(`tidings\u0000${channel}\u0000${epoch}\u0000${offset}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function wrap(push: Obj, channel: unknown): Obj {
  const time = typeof push['time'] === 'number' ? push['time'] : Date.now();
  const uuid =
    typeof push['offset'] === 'number' && typeof channel === 'string'
      ? nativeMessageUuid(channel, String(push['epoch']), push['offset'])
      : nativeMessageUuid('direct', JSON.stringify(push), 0);
  return {
    channel,
    uuid,
    timestamp: csTimestamp(time),
    user: push['sender'] ?? null,
    message: push['data'] ?? null,
    edited: null,
    catchup: false,
    type: 'message',
  };
}

/** The channelstream object for a native push, or null when channelstream has no such object. */
export function channelstreamObject(push: Obj): Obj | null {
  const time = typeof push['time'] === 'number' ? push['time'] : Date.now();
  switch (push['type']) {
    case 'message':
      return isChannelstreamMessage(push['data']) ? forClient(push['data']) : wrap(push, push['channel']);
    case 'direct':
      if (isEditOrDelete(push['data'])) return forClient(push['data']);
      return isChannelstreamMessage(push['data']) ? forClient(push['data']) : wrap(push, null);
    case 'join':
    case 'leave':
      return {
        uuid: push['id'],
        type: 'presence',
        user: push['user'],
        users: push['users'] ?? [],
        timestamp: csTimestamp(time),
        channel: push['channel'],
        message: { action: push['type'] === 'join' ? 'joined' : 'parted' },
        state: push['type'] === 'join' ? (push['state'] ?? {}) : null,
        catchup: false,
      };
    case 'state':
      return {
        uuid: push['id'],
        type: 'user_state_change',
        user: push['user'],
        timestamp: csTimestamp(time),
        catchup: false,
        channel: push['channel'],
        message: { state: push['state'], changed: push['changed'] },
      };
    case 'edit':
    case 'delete':
      return isEditOrDelete(push['data']) ? forClient(push['data']) : null;
    default:
      return null;
  }
}

/** The users a channelstream message must not reach (its `exclude_users`). */
export function excludedUsers(push: Obj): readonly string[] {
  const data = push['data'];
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return [];
  const ex = (data as Obj)['exclude_users'];
  return Array.isArray(ex) ? ex.filter((x): x is string => typeof x === 'string') : [];
}
