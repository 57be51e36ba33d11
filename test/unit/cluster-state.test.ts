/** Pure cluster-state functions: presence bookkeeping, expiry, user state, channel configs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PresenceState, writableState } from '../../src/director/presence.js';
import { applyState, fitsStateLimit, MAX_STATE_KEYS, publicChanges, publicState } from '../../src/director/user-state.js';
import { ChannelConfigs, channelstreamDefaults, historyLimits, mergeChannelConfig, nativeDefaults } from '../../src/director/channel-config.js';
import { channelstreamObject, csTimestamp, nativeMessageUuid } from '../../src/compat/shape.js';

test('join/leave changes only on a user first join and last leave; anonymous never in presence', () => {
  const p = new PresenceState(100);
  p.attach('c1', 'ann', 'e1', 'i1', 0);
  p.attach('c2', 'ann', 'e2', 'i2', 0);
  p.attach('c3', null, 'e1', 'i1', 0);
  assert.deepEqual(p.join('c1', 'room'), { action: 'join', channel: 'room', user: 'ann' });
  assert.equal(p.join('c2', 'room'), null);
  assert.equal(p.join('c1', 'room'), null, 'idempotent');
  assert.equal(p.join('c3', 'room'), null);
  assert.deepEqual(p.usersIn('room'), [{ user: 'ann', connections: ['c1', 'c2'] }]);
  assert.deepEqual(p.stats('room'), { users: 1, connections: 2 });
  assert.deepEqual(p.connectionsIn('room'), ['c1', 'c2', 'c3']);
  assert.equal(p.leave('c1', 'room'), null);
  assert.deepEqual(p.leave('c2', 'room'), { action: 'leave', channel: 'room', user: 'ann' });
  assert.equal(p.leave('c2', 'room'), null);
  assert.equal(p.hasMembers('room'), true, 'the anonymous connection is still there');
  assert.deepEqual(p.remove('c3'), []);
  assert.equal(p.hasMembers('room'), false);
});

test('a silent instance loses its connections after the ttl; registered connections wait for their client', () => {
  const p = new PresenceState(100);
  p.attach('a', 'ann', 'e1', 'i1', 0);
  p.join('a', 'room');
  p.register('r', 'rob', 0);
  p.join('r', 'room');
  p.touchInstance('i1', 'e1', 1000);
  let out = p.expire(3000, 2500);
  assert.deepEqual(out.removed, ['r'], 'unclaimed registered connection expired');
  assert.deepEqual(out.changes, [{ action: 'leave', channel: 'room', user: 'rob' }]);
  out = p.expire(3600, 2500);
  assert.deepEqual(out.instances, ['i1']);
  assert.deepEqual(out.changes, [{ action: 'leave', channel: 'room', user: 'ann' }]);
  assert.equal(p.conns.size, 0);
  // A registered connection whose websocket closes keeps its presence until the ttl.
  p.register('r2', 'rob', 4000);
  p.attach('r2', 'rob', 'e1', 'i9', 4000);
  p.join('r2', 'room');
  assert.deepEqual(p.detach('r2', 'i9', 5000), []);
  assert.deepEqual(p.stats('room'), { users: 1, connections: 1 });
  assert.throws(() => p.attach('r2', 'eve', 'e1', 'i9', 5000), /another user/);
});

test('sync makes the director view of an instance equal to the edge list', () => {
  const p = new PresenceState(100);
  p.attach('a', 'ann', 'e1', 'i1', 0);
  p.join('a', 'x');
  p.attach('b', 'bob', 'e1', 'i1', 0);
  p.join('b', 'x');
  const changes = p.sync('i1', 'e1', [{ conn: 'a', user: 'ann', channels: ['y'] }, { conn: 'c', user: 'cat', channels: ['x'] }], 10);
  assert.deepEqual(changes, [
    { action: 'leave', channel: 'x', user: 'bob' },
    { action: 'leave', channel: 'x', user: 'ann' },
    { action: 'join', channel: 'y', user: 'ann' },
    { action: 'join', channel: 'x', user: 'cat' },
  ]);
  assert.equal(p.conns.has('b'), false);
});

test('presence refuses connections past its limit', () => {
  const p = new PresenceState(1);
  p.attach('a', 'ann', 'e', 'i', 0);
  assert.throws(() => p.attach('b', 'bob', 'e', 'i', 0), /at most 1/);
});

test('user state: changed keys, public keys only', () => {
  const s: Record<string, unknown> = { a: 1, nested: { x: [1, 2] } };
  assert.deepEqual(applyState(s, { a: 1, nested: { x: [1, 2] }, b: 'new' }), [{ key: 'b', value: 'new' }]);
  assert.deepEqual(applyState(s, { nested: { x: [1, 3] } }), [{ key: 'nested', value: { x: [1, 3] } }]);
  assert.deepEqual(publicState(s, ['b', 'missing']), { b: 'new' });
  assert.deepEqual(publicChanges([{ key: 'a', value: 2 }, { key: 'b', value: 3 }], ['b']), [{ key: 'b', value: 3 }]);
  assert.deepEqual(applyState(s, null), []);
  const big = Object.fromEntries(Array.from({ length: MAX_STATE_KEYS }, (_, i) => [`k${i}`, i]));
  assert.equal(fitsStateLimit({}, big), true);
  assert.equal(fitsStateLimit(big, { k1: 'changed' }), true, 'changing a key adds none');
  assert.equal(fitsStateLimit(big, { extra: 1 }), false);
});

test('channel configs: channelstream defaults on creation, native defaults otherwise, validation', () => {
  const configs = new ChannelConfigs(nativeDefaults(100, 300), channelstreamDefaults(300));
  assert.equal(configs.effective('n').store_history, true);
  assert.equal(configs.effective('n').history_size, 100);
  const c = configs.createIfNew('cs', { notify_presence: true, history_size: null });
  assert.equal(c.notify_presence, true);
  assert.equal(c.store_history, false);
  assert.equal(c.history_size, 10);
  assert.equal(configs.createIfNew('cs', { notify_presence: false }).notify_presence, true, 'only on creation');
  assert.equal(configs.reconfigure('cs', { notify_state: true }).notify_presence, true, 'reconfigure keeps other keys');
  assert.deepEqual(historyLimits(configs.effective('cs'), 4096), { maxCount: 0, maxAgeMs: 300_000, maxBytes: 4096 });
  assert.throws(() => mergeChannelConfig(channelstreamDefaults(1), { notify_presence: 'yes' }, 'cfg'), /cfg.notify_presence must be a boolean/);
  assert.throws(() => mergeChannelConfig(channelstreamDefaults(1), { history_size: 1.5 }, 'cfg'), /history_size/);
  assert.throws(() => mergeChannelConfig(channelstreamDefaults(1), [], 'cfg'), /must be an object/);
});

test('channelstream shapes from native pushes', () => {
  assert.equal(csTimestamp(Date.UTC(2024, 0, 2, 3, 4, 5, 678)), '2024-01-02T03:04:05.678000');
  const wrapped = channelstreamObject({ type: 'message', channel: 'c', offset: 3, epoch: 'E', sender: 'u', time: 1, data: { t: 1 } });
  assert.deepEqual(wrapped, { uuid: nativeMessageUuid('c', 'E', 3), timestamp: '1970-01-01T00:00:00.001000', user: 'u', message: { t: 1 }, channel: 'c', edited: null, catchup: false, type: 'message' });
  assert.match(wrapped!['uuid'] as string, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a standard UUID, the same on every edge');
  assert.notEqual(nativeMessageUuid('c', 'E', 4), wrapped!['uuid']);
  // A /message object: the delivery keys go, everything else stays; an aware UTC time is written with Z, as channelstream's frames do.
  const posted = { pm_users: [], exclude_users: ['y'], channel: 'c', no_history: false, uuid: 'u1', timestamp: '2020-01-01T00:00:00+00:00', user: 'x', edited: null, catchup: false, type: 'message' };
  assert.deepEqual(channelstreamObject({ type: 'message', channel: 'c', data: posted }), { channel: 'c', uuid: 'u1', timestamp: '2020-01-01T00:00:00Z', user: 'x', edited: null, catchup: false, type: 'message' });
  const leave = channelstreamObject({ type: 'leave', channel: 'c', user: 'x', time: 0, id: 'i' });
  assert.deepEqual(Object.keys(leave!).sort(), ['catchup', 'channel', 'message', 'state', 'timestamp', 'type', 'user', 'users', 'uuid']);
  assert.deepEqual(leave!['message'], { action: 'parted' });
  assert.equal(leave!['state'], null);
  const edit = channelstreamObject({ type: 'edit', channel: 'c', data: { channel: 'c', uuid: 'u1', edited: 't', message: {}, type: 'message:edit' } });
  assert.deepEqual(Object.keys(edit!).sort(), ['channel', 'edited', 'message', 'type', 'uuid'], 'no catchup, timestamp or user where channelstream sends none');
  assert.equal(channelstreamObject({ type: 'ping' }), null);
});

test('a channel event header carries kind 5 and the user to skip', async () => {
  const { decodeHeader, encodeHeader, DownKind } = await import('../../src/cluster/wire.js');
  assert.deepEqual(decodeHeader(encodeHeader(DownKind.ChannelEvent, 0, 'bob')), { kind: 5, offset: 0, epoch: 'bob' });
  const bad = encodeHeader(DownKind.ChannelEvent, 0, '');
  bad[0] = 7; // past MessageBatch (6), the last kind
  assert.equal(decodeHeader(bad), undefined);
});

test('a user state is shared and frozen until written; writableState gives each user its own', () => {
  const p = new PresenceState(100);
  const ann = p.user('ann', 0);
  const bob = p.user('bob', 0);
  assert.ok(Object.isFrozen(ann.state), 'a write that skips writableState fails loudly');
  assert.deepEqual(applyState(writableState(ann), { mood: 'ok' }), [{ key: 'mood', value: 'ok' }]);
  assert.deepEqual(ann.state, { mood: 'ok' });
  assert.deepEqual(bob.state, {}, 'the other user is untouched');
  assert.equal(writableState(ann), ann.state, 'the same object from then on');
  assert.deepEqual(bob.publicKeys, []);
});

test('presence keeps anonymous and named connections of a channel apart and lists them together', () => {
  const p = new PresenceState(100);
  p.attach('n1', 'ann', 'e1', 'i1', 0);
  p.attach('n2', 'ann', 'e1', 'i1', 0);
  p.attach('a1', null, 'e1', 'i1', 0);
  p.attach('a2', null, 'e1', 'i1', 0);
  for (const id of ['n1', 'a2', 'n2', 'a1']) p.join(id, 'room');
  assert.deepEqual(p.connectionsIn('room'), ['a1', 'a2', 'n1', 'n2']);
  assert.deepEqual([...p.channelNames()], ['room']);
  assert.deepEqual(p.remove('n1'), []);
  assert.deepEqual(p.remove('a1'), []);
  assert.deepEqual(p.stats('room'), { users: 1, connections: 1 });
  assert.deepEqual(p.remove('n2'), [{ action: 'leave', channel: 'room', user: 'ann' }]);
  assert.equal(p.channelCount(), 1, 'the anonymous connection keeps the channel');
  assert.deepEqual(p.remove('a2'), []);
  assert.equal(p.channelCount(), 0);
  assert.deepEqual([...p.users.get('ann')!.conns], []);
});
