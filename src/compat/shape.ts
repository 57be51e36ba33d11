/**
 * channelstream's client-facing objects, made from Tidings' native pushes.
 * Messages posted through channelstream's `/message` carry the whole
 * channelstream object as their `data`, so they pass through unchanged;
 * native publishes are wrapped. Pure: no Node imports.
 */

export type Obj = Record<string, unknown>;

/** channelstream's timestamps: Python's naive UTC isoformat with microseconds. */
export function csTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000');
}

/** Whether a message's data is an object posted through channelstream's `/message`. */
export function isChannelstreamMessage(data: unknown): data is Obj {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return false;
  const d = data as Obj;
  return d['type'] === 'message' && typeof d['uuid'] === 'string' && typeof d['timestamp'] === 'string' && 'message' in d;
}

function isEditOrDelete(data: unknown): data is Obj {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return false;
  const t = (data as Obj)['type'];
  return (t === 'message:edit' || t === 'message:delete') && typeof (data as Obj)['uuid'] === 'string';
}

/** Keys that steer delivery and are never shown to clients. */
const DELIVERY_KEYS = ['pm_users', 'exclude_users'];

function withoutDelivery(o: Obj): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) if (!DELIVERY_KEYS.includes(k)) out[k] = v;
  return out;
}

function wrap(push: Obj, channel: unknown): Obj {
  return {
    uuid: typeof push['offset'] === 'number' ? `${String(push['epoch'])}.${push['offset']}` : String(push['time']),
    timestamp: csTimestamp(typeof push['time'] === 'number' ? push['time'] : Date.now()),
    user: push['sender'] ?? null,
    message: push['data'] ?? null,
    channel,
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
      return isChannelstreamMessage(push['data']) ? { ...withoutDelivery(push['data']), catchup: false } : wrap(push, push['channel']);
    case 'direct':
      if (isEditOrDelete(push['data'])) return withoutDelivery(push['data']);
      return isChannelstreamMessage(push['data']) ? { ...withoutDelivery(push['data']), catchup: false } : wrap(push, null);
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
        channel: push['channel'],
        message: { state: push['state'], changed: push['changed'] },
        catchup: false,
      };
    case 'edit':
    case 'delete':
      return { ...withoutDelivery((push['data'] as Obj) ?? {}), type: push['type'] === 'edit' ? 'message:edit' : 'message:delete' };
    default:
      return null;
  }
}

/** The users a channelstream message must not reach (its `exclude_users`). */
export function excludedUsers(push: Obj): readonly string[] {
  const data = push['data'];
  if (!isChannelstreamMessage(data)) return [];
  const ex = data['exclude_users'];
  return Array.isArray(ex) ? ex.filter((x): x is string => typeof x === 'string') : [];
}
