/**
 * channelstream 0.7.1's request schemas (channelstream/validation/schemas.py),
 * field by field, with its defaults. The two checks that need server state
 * ("Unknown connection", "Unknown user") are made by the director and turned
 * into the same 422 bodies by routes.ts. Pure: no Node imports.
 */
import { MAX_CARRIED_CHANNEL_LENGTH, MAX_CARRIED_USER_LENGTH, carriedChannelProblem, carriedUserProblem } from '../protocol/names.js';
import { boolean, datetime, dictOf, integer, isoformat, Invalid, list, mapping, nested, stateValue, string, uuid, type Schema } from './schema.js';

/** A fresh uuid4, as channelstream's gen_uuid. */
export function newUuid(): string {
  return globalThis.crypto.randomUUID();
}

/** Now as naive UTC with microseconds (Python's `datetime.utcnow()`). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** `datetime.utcnow().isoformat()`. */
export function utcnowIso(): string {
  return isoformat(nowMs());
}

/**
 * Names must also travel through the cluster: channelstream accepts any
 * string; Tidings refuses the two it cannot route (NUL, lone surrogates).
 */
function routable(problem: (v: unknown) => string | undefined): (v: string) => void {
  return (v) => {
    const p = problem(v);
    if (p) throw new Invalid([`Not routable: ${p}.`]);
  };
}

const channelName = () => string({ min: 1, max: MAX_CARRIED_CHANNEL_LENGTH, validate: routable(carriedChannelProblem) });
const userName = (opts: { required?: boolean } = {}) => string({ ...opts, min: 1, max: MAX_CARRIED_USER_LENGTH, validate: routable(carriedUserProblem) });
const stateDict = () => dictOf(stateValue(), { missing: () => ({}) });

export const ChannelConfigSchema: Schema = {
  notify_presence: boolean({ missing: false }),
  store_history: boolean({ missing: false }),
  history_size: integer({ missing: 10, min: 0 }),
  broadcast_presence_with_user_lists: boolean({ missing: false }),
  notify_state: boolean({ missing: false }),
  store_frames: boolean({ missing: true }),
};

export const InfoResolutionSchema: Schema = {
  include_history: boolean({ missing: true }),
  include_users: boolean({ missing: true }),
  channels: list(channelName()),
  exclude_channels: list(channelName()),
  include_connections: boolean({ missing: false }),
  return_public_state: boolean({ missing: false }),
};

export const ChannelInfoBodySchema: Schema = {
  info: nested(InfoResolutionSchema, { required: true }),
};

const channelConfigs = () => dictOf(nested(ChannelConfigSchema), { missing: () => ({}) });

export const ConnectBodySchema: Schema = {
  username: userName({ required: true }),
  conn_id: uuid({ missing: newUuid }),
  channels: list(channelName(), { missing: () => [] }),
  state_public_keys: list(string({ min: 1, max: 256 }), { missing: () => [] }),
  fresh_user_state: stateDict(),
  user_state: stateDict(),
  channel_configs: channelConfigs(),
  info: nested(InfoResolutionSchema, { missing: () => ({}) }),
};

/** Also /unsubscribe's. `conn_id` may come from the query string. */
export const SubscribeBodySchema: Schema = {
  conn_id: uuid({ required: true }),
  channels: list(channelName(), { required: true, min: 1 }),
  info: nested(InfoResolutionSchema, { missing: () => ({}) }),
  channel_configs: channelConfigs(),
};

export const UserStateBodySchema: Schema = {
  user: userName({ required: true }),
  user_state: stateDict(),
  state_public_keys: list(string({ min: 1, max: 256 }), { missing: null }),
};

const delivery: Schema = {
  pm_users: list(userName(), { missing: () => [] }),
  exclude_users: list(userName(), { missing: () => [] }),
  channel: string({ min: 1, max: MAX_CARRIED_CHANNEL_LENGTH, missing: null, validate: routable(carriedChannelProblem) }),
  no_history: boolean({ missing: false }),
};

/** POST /message items; `edited: null` is added after loading. */
export const MessageBodySchema: Schema = {
  ...delivery,
  uuid: uuid({ missing: newUuid }),
  timestamp: datetime({ missing: utcnowIso }),
  user: userName({ required: true }),
  message: mapping(),
};

/** PATCH /message items. */
export const MessageEditBodySchema: Schema = {
  ...delivery,
  uuid: uuid({ required: true }),
  timestamp: datetime(),
  user: userName(),
  message: mapping(),
  edited: datetime({ missing: utcnowIso }),
};

/** DELETE /message items. */
export const MessagesDeleteBodySchema: Schema = {
  ...delivery,
  uuid: uuid({ required: true }),
};

export const DisconnectBodySchema: Schema = {
  conn_id: uuid({ required: true }),
};

/** The keys of a message an edit may change (channelstream's MSG_EDITABLE_KEYS). */
export const MSG_EDITABLE_KEYS = ['uuid', 'timestamp', 'user', 'message', 'edited'] as const;
