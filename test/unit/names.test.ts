import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelProblem, grantMatches, grantsAllow, isValidChannel, isValidGrant, isValidUser } from '../../src/protocol/names.js';
import { channelTopic, parseTopic, TopicKind, userBucket, userBucketTopic, userTopic } from '../../src/cluster/topics.js';

test('channel names: allowed characters and length', () => {
  for (const ok of ['room1', 'a', 'chat.room-1', 'user:42', 'a/b', 'x@y=z,w+v!~$', 'x'.repeat(200)]) assert.ok(isValidChannel(ok), ok);
  for (const bad of ['', ' ', 'a b', 'a\u0000b', 'tab\t', 'star*', 'x'.repeat(201), 'é', 'a\nb']) assert.ok(!isValidChannel(bad), JSON.stringify(bad));
  assert.match(channelProblem('')!, /empty/);
  assert.match(channelProblem('x'.repeat(201))!, /longer than 200/);
  assert.match(channelProblem(5)!, /string/);
  assert.equal(channelProblem('ok'), undefined);
});

test('user ids: 1-200 characters without control characters', () => {
  assert.ok(isValidUser('alice'));
  assert.ok(isValidUser('Zoë O’Brien'));
  assert.ok(!isValidUser(''));
  assert.ok(!isValidUser('a\u0000'));
  assert.ok(!isValidUser('x'.repeat(201)));
  assert.ok(!isValidUser(42));
});

test('grants: exact names, prefix patterns and *', () => {
  assert.ok(grantMatches('room1', 'room1'));
  assert.ok(!grantMatches('room1', 'room10'));
  assert.ok(!grantMatches('room1', 'room'));
  assert.ok(grantMatches('chat.*', 'chat.room1'));
  assert.ok(!grantMatches('chat.*', 'chat.'), 'the pattern needs at least one character after the prefix');
  assert.ok(!grantMatches('chat.*', 'chatx'));
  assert.ok(grantMatches('*', 'anything'));
  assert.ok(grantsAllow(['a', 'b.*'], 'b.c'));
  assert.ok(!grantsAllow(undefined, 'a'));
  assert.ok(!grantsAllow([], 'a'));
  assert.ok(isValidGrant('chat.*'));
  assert.ok(!isValidGrant('*.chat'));
  assert.ok(!isValidGrant('a b'));
});

test('topics end in NUL so prefix matching is exact', () => {
  const room1 = channelTopic('room1');
  const room10 = channelTopic('room10');
  assert.equal(room1.toString('latin1'), 'croom1\u0000');
  // ZeroMQ delivers a message when the subscription is a prefix of its topic.
  assert.ok(!room10.subarray(0, room1.length).equals(room1), 'room1 subscription must not match room10');
  assert.ok(!channelTopic('room1x').subarray(0, room1.length).equals(room1));
  assert.deepEqual(parseTopic(room10), { kind: TopicKind.Channel, name: 'room10' });
  assert.deepEqual(parseTopic(userTopic('bob')), { kind: TopicKind.User, name: 'bob' });
  assert.equal(parseTopic(Buffer.from('croom1')), undefined, 'no terminator');
  assert.equal(parseTopic(Buffer.from('zroom1\u0000')), undefined, 'unknown kind');
  assert.ok(!channelTopic('room1').equals(userTopic('room1')), 'channel and user namespaces differ');
});

test('a user topic starts with its bucket, which an edge subscribes to for all its users of that bucket', () => {
  const bob = userTopic('bob');
  assert.match(userBucket('bob'), /^[0-9a-f]{2}$/);
  assert.ok(bob.subarray(0, 3).equals(userBucketTopic(userBucket('bob'))), 'the bucket prefix matches');
  assert.equal(userBucket('user107'), userBucket('bob'), 'user107 shares it (the cluster test relies on it)');
  assert.notEqual(userBucket('carol'), userBucket('bob'));
  assert.ok(!userTopic('carol').subarray(0, 3).equals(userBucketTopic(userBucket('bob'))), "another bucket's prefix does not");
  assert.equal(parseTopic(Buffer.from('ud\u0000')), undefined, 'too short for a bucket');
  // Buckets spread evenly: 25 600 users, 100 per bucket on average, none above 150.
  const counts = new Map<string, number>();
  for (let i = 0; i < 25_600; i++) counts.set(userBucket(`user-${i}`), (counts.get(userBucket(`user-${i}`)) ?? 0) + 1);
  assert.equal(counts.size, 256);
  assert.ok(Math.max(...counts.values()) < 150, `fullest bucket ${Math.max(...counts.values())}`);
});
