/**
 * channelstream 0.7.1's request validation (marshmallow 2.18 semantics):
 * defaults, conversions and the exact 422 messages, nested as channelstream
 * nests them. Expected values are read from channelstream's schemas.py and
 * marshmallow 2.18's fields.py/validate.py (marshmallow is not packaged for
 * Debian in that version); UUID parsing is compared with Python's own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Invalid, load, loadMany, canonicalUuid, isoformat } from '../../src/compat/schema.js';
import { ChannelConfigSchema, ChannelInfoBodySchema, ConnectBodySchema, MessageBodySchema, MessageEditBodySchema, SubscribeBodySchema, UserStateBodySchema } from '../../src/compat/schemas.js';
import { PYTHON } from '../helpers/channelstream.js';

const REQUIRED = 'Missing data for required field.';

function messagesOf(run: () => unknown): unknown {
  try {
    run();
  } catch (err) {
    if (err instanceof Invalid) return err.messages;
    throw err;
  }
  assert.fail('no validation error');
}

test('UUIDs are read as Python uuid.UUID reads them and written canonically', () => {
  const forms = [
    '7a7cbc6a-9ae5-4a8b-bb0c-7c5e6e4c9d21',
    '7A7CBC6A9AE54A8BBB0C7C5E6E4C9D21',
    '{7a7cbc6a-9ae5-4a8b-bb0c-7c5e6e4c9d21}',
    'urn:uuid:7a7cbc6a-9ae5-4a8b-bb0c-7c5e6e4c9d21',
    '7a7cbc6a-9ae5-4a8b-bb0c-7c5e6e4c9d2',
    '7a7cbc6a-9ae5-4a8b-bb0c-7c5e6e4c9d2g',
    'not-a-uuid',
    '',
    '0x7cbc6a9ae54a8bbb0c7c5e6e4c9d21',
    '7a7c_bc6a9ae54a8bbb0c7c5e6e4c9d2',
    ' 7a7cbc6a9ae54a8bbb0c7c5e6e4c9d2',
  ];
  const py = JSON.parse(
    execFileSync(PYTHON, ['-c', 'import sys, json, uuid\nout=[]\nfor f in json.load(sys.stdin):\n    try: out.append(str(uuid.UUID(f)))\n    except ValueError: out.append(None)\nprint(json.dumps(out))'], {
      input: JSON.stringify(forms),
      timeout: 10_000,
    }).toString('utf8'),
  ) as Array<string | null>;
  forms.forEach((f, i) => assert.equal(canonicalUuid(f), py[i], JSON.stringify(f)));
  assert.equal(canonicalUuid(42), null);
});

test('connect: required username, defaults filled, unknown keys dropped', () => {
  assert.deepEqual(messagesOf(() => load(ConnectBodySchema, {})), { username: [REQUIRED] });
  assert.deepEqual(messagesOf(() => load(ConnectBodySchema, [])), { _schema: ['Invalid input type.'] });
  const b = load(ConnectBodySchema, { username: 'u', extra: 1, channel_configs: { a: { notify_presence: 'true', history_size: '20' } } });
  assert.deepEqual(Object.keys(b), ['username', 'conn_id', 'channels', 'state_public_keys', 'fresh_user_state', 'user_state', 'channel_configs', 'info']);
  assert.match(b['conn_id'] as string, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.deepEqual(b['channel_configs'], { a: { notify_presence: true, store_history: false, history_size: 20, broadcast_presence_with_user_lists: false, notify_state: false, store_frames: true } });
  assert.deepEqual(b['info'], { include_history: true, include_users: true, include_connections: false, return_public_state: false });
  assert.deepEqual(messagesOf(() => load(ConnectBodySchema, { username: 'u', conn_id: 'x', user_state: { a: { nested: 1 } } })), {
    conn_id: ['Not a valid UUID.'],
    user_state: { a: { value: ['Value is not type of string, integer, boolean or float.'] } },
  });
  assert.deepEqual(messagesOf(() => load(ConnectBodySchema, { username: 'u', channel_configs: { a: { history_size: -1, notify_state: 'yes' } } })), {
    channel_configs: { a: { value: { history_size: ['Must be at least 0.'], notify_state: ['Not a valid boolean.'] } } },
  });
});

test('names: channels up to 256 characters of any kind, users up to 512, counted as Python counts', () => {
  const emoji = '\u{1F600}';
  const ok = load(ConnectBodySchema, { username: 'é'.repeat(512), channels: ['a b #c', emoji.repeat(256), 'x*'] });
  assert.deepEqual(ok['channels'], ['a b #c', emoji.repeat(256), 'x*']);
  assert.deepEqual(messagesOf(() => load(ConnectBodySchema, { username: 'u'.repeat(513), channels: ['ok', 'x'.repeat(257), ''] })), {
    username: ['Length must be between 1 and 512.'],
    channels: { '1': ['Length must be between 1 and 256.'], '2': ['Length must be between 1 and 256.'] },
  });
  // What cannot travel through the cluster's topics is refused, and says why.
  assert.deepEqual(messagesOf(() => load(ConnectBodySchema, { username: 'u', channels: ['a\u0000b', '\ud800x'] })), {
    channels: { '0': ['Not routable: channel must not contain NUL.'], '1': ['Not routable: channel must be valid Unicode (no lone surrogates).'] },
  });
});

test('subscribe: conn_id and at least one channel', () => {
  assert.deepEqual(messagesOf(() => load(SubscribeBodySchema, {})), { conn_id: [REQUIRED], channels: [REQUIRED] });
  assert.deepEqual(messagesOf(() => load(SubscribeBodySchema, { conn_id: null, channels: [] })), { conn_id: ['Field may not be null.'], channels: ['Shorter than minimum length 1.'] });
});

test('message lists: errors per item index, no type or catchup added, message must be a mapping', () => {
  assert.deepEqual(messagesOf(() => loadMany(MessageBodySchema, {})), { _schema: ['Invalid input type.'] });
  assert.deepEqual(messagesOf(() => loadMany(MessageBodySchema, [{ user: 'u', channel: 'c' }, { channel: 'c', message: 'text', uuid: 'no' }])), {
    '1': { uuid: ['Not a valid UUID.'], user: [REQUIRED], message: ['Not a valid mapping type.'] },
  });
  const [m] = loadMany(MessageBodySchema, [{ user: 'u', channel: 'c', message: { t: 1 }, type: 'x', colour: 'blue', timestamp: '2020-1-2 3:04:05.5Z' }]);
  assert.deepEqual(Object.keys(m!), ['pm_users', 'exclude_users', 'channel', 'no_history', 'uuid', 'timestamp', 'user', 'message']);
  assert.equal(m!['timestamp'], '2020-01-02T03:04:05.500000+00:00');
  const [noMessage] = loadMany(MessageBodySchema, [{ user: 'u', pm_users: ['a'] }]);
  assert.equal('message' in noMessage!, false, 'an absent message stays absent');
  assert.equal(noMessage!['channel'], null);
  const [edit] = loadMany(MessageEditBodySchema, [{ uuid: '7A7CBC6A9AE54A8BBB0C7C5E6E4C9D21', channel: 'c', message: {} }]);
  assert.deepEqual(Object.keys(edit!), ['pm_users', 'exclude_users', 'channel', 'no_history', 'uuid', 'message', 'edited']);
  assert.equal(edit!['uuid'], '7a7cbc6a-9ae5-4a8b-bb0c-7c5e6e4c9d21');
  assert.match(edit!['edited'] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$/);
  assert.deepEqual(messagesOf(() => loadMany(MessageBodySchema, [5, { user: 'u', channel: 'c', timestamp: 'yesterday' }])), {
    _schema: ['Invalid input type.'],
    '1': { timestamp: ['Not a valid datetime.'] },
  });
});

test('info, user_state and channel_config bodies', () => {
  assert.deepEqual(messagesOf(() => load(ChannelInfoBodySchema, {})), { info: [REQUIRED] });
  assert.deepEqual(load(ChannelInfoBodySchema, { info: { channels: [] } })['info'], { include_history: true, include_users: true, channels: [], include_connections: false, return_public_state: false });
  assert.deepEqual(load(UserStateBodySchema, { user: 'u' }), { user: 'u', user_state: {}, state_public_keys: null });
  assert.deepEqual(load(ChannelConfigSchema, { store_history: 1 }), { notify_presence: false, store_history: true, history_size: 10, broadcast_presence_with_user_lists: false, notify_state: false, store_frames: true });
  assert.deepEqual(messagesOf(() => load(ChannelConfigSchema, { history_size: '1.5' })), { history_size: ['Not a valid integer.'] });
});

test('timestamps are Python isoformat: microseconds, none when zero', () => {
  assert.equal(isoformat(Date.UTC(2020, 1, 22, 19, 12, 26, 123) + 0.456), '2020-02-22T19:12:26.123456');
  assert.equal(isoformat(Date.UTC(2020, 1, 22, 19, 12, 26, 0)), '2020-02-22T19:12:26');
});
