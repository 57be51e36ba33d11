/**
 * The director's catch-up queues (channelstream's store_frames), as objects:
 * what is kept while a connection is away or attaching, what a confirmation
 * returns, edits and deletes of kept messages, and the bounds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CatchupQueues, MAX_FRAMES } from '../../src/director/catchup.js';
import type { ConnRecord } from '../../src/director/presence.js';
import { CompactSet } from '../../src/runtime/compact-set.js';

function rec(id: string, user: string, channels: string[]): ConnRecord {
  return { id, user, edge: null, instance: null, channels: new CompactSet(channels), detachedAt: 0, graceMs: null, registered: true };
}

const push = (o: object) => Buffer.from(JSON.stringify(o));
const msg = (channel: string, uuid: string, text: string) => push({ type: 'message', channel, data: { uuid, type: 'message', message: { text } } });

test('frames are kept while away and while attaching, and handed out per confirmed stream, oldest first', () => {
  const dropped: string[] = [];
  const q = new CatchupQueues(1 << 20, 1 << 24, (ch) => ch !== 'nostore', (r) => dropped.push(r.id));
  const r = rec('c1', 'carl', ['a', 'b', 'nostore']);
  q.away(r);
  q.onPush('channel', 'a', msg('a', 'u1', 'one'), null);
  q.onPush('channel', 'nostore', msg('nostore', 'u2', 'kept by nobody'), null);
  q.onPush('user', 'carl', push({ type: 'direct', user: 'carl', data: { n: 1 } }), null);
  q.onPush('channel', 'other', msg('other', 'u3', 'not carl'), null);
  r.edge = 'e0';
  q.attached(r);
  q.onPush('channel', 'nostore', msg('nostore', 'u4', 'while attaching: kept'), null);
  q.onPush('channel', 'b', msg('b', 'u5', 'b'), 'carl');
  const first = q.confirm('c1', ['a', 'nostore'], false);
  assert.deepEqual(first.map((f) => [f.channel, f.catchup]), [['a', true], ['nostore', false]]);
  q.onPush('channel', 'a', msg('a', 'u6', 'confirmed: live, not kept'), null);
  const rest = q.confirm('c1', ['b'], true);
  assert.deepEqual(rest.map((f) => [f.channel, f.except, f.catchup]), [[null, null, true], ['b', 'carl', false]]);
  assert.equal(q.framesOf('c1'), 0);
  assert.equal(q.totalBytes, 0);
  // Joined later while attached: kept until confirmed; left: its frames go.
  r.channels.add('late');
  q.joined(r, 'late');
  q.onPush('channel', 'late', msg('late', 'u7', 'x'), null);
  q.left(r, 'late');
  assert.equal(q.framesOf('c1'), 0);
  assert.deepEqual(dropped, []);
});

test('an edit changes a kept message, a delete removes it', () => {
  const q = new CatchupQueues(1 << 20, 1 << 24, () => true, () => undefined);
  const r = rec('c1', 'carl', ['a']);
  q.away(r);
  q.onPush('channel', 'a', msg('a', 'u1', 'one'), null);
  q.onPush('channel', 'a', msg('a', 'u2', 'two'), null);
  q.amend('channel', 'a', 'u1', (d) => Object.assign(d, { message: { text: 'ONE' }, edited: 't' }));
  q.amend('channel', 'a', 'u2', null);
  const frames = q.confirm('c1', ['a'], true).map((f) => JSON.parse(f.push.toString()).data);
  assert.deepEqual(frames, [{ uuid: 'u1', type: 'message', message: { text: 'ONE' }, edited: 't' }]);
  assert.equal(q.totalBytes, 0);
});

test('a connection whose kept frames pass a bound is dropped, not silently trimmed', () => {
  for (const [perConn, total, n] of [
    [1000, 1 << 24, 30], // catchup_max_bytes
    [1 << 20, 1500, 40], // the director-wide bound
    [1 << 30, 1 << 30, MAX_FRAMES + 1], // frames per connection
  ] as const) {
    const dropped: string[] = [];
    const q = new CatchupQueues(perConn, total, () => true, (r) => dropped.push(r.id));
    const r = rec('c1', 'carl', ['a']);
    q.away(r);
    const small = Buffer.from('{"type":"message","channel":"a","data":{"n":1}}');
    for (let i = 0; i < n; i++) q.onPush('channel', 'a', small, null);
    assert.deepEqual(dropped, ['c1'], `bound ${perConn}/${total}/${n}`);
    assert.equal(q.totalBytes, 0, 'its frames are released');
    assert.equal(q.size, 0);
  }
});
