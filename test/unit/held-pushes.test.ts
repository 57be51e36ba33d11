import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeldPushes, MAX_HELD } from '../../src/edge/held-pushes.js';
import { SharedPush } from '../../src/edge/frames.js';

const push = (channel: string | null, offset: number): SharedPush => new SharedPush(Buffer.from('{}'), channel, offset);

test('only held channels are held; release returns what belongs after the position, events included', () => {
  const h = new HeldPushes();
  assert.equal(h.offer(push('a', 1)), 'pass', 'nothing held yet');
  h.hold('a');
  assert.equal(h.offer(push('b', 1)), 'pass', 'another channel');
  assert.equal(h.offer(push(null, 0)), 'pass', 'a direct message');
  for (const o of [5, 6, 7]) assert.equal(h.offer(push('a', o)), 'held');
  assert.equal(h.offer(push('a', 0)), 'held', 'a channel event');
  const out = h.release('a', 5);
  assert.deepEqual(out.map((p) => p.offset), [6, 7, 0], 'offset 5 was replayed already; the event keeps its place');
  assert.equal(h.offer(push('a', 8)), 'pass', 'released channels pass again');
  assert.deepEqual(h.release('a', 0), [], 'releasing twice is harmless');
});

test('a held channel is bounded', () => {
  const h = new HeldPushes();
  h.hold('a');
  for (let i = 1; i <= MAX_HELD; i++) assert.equal(h.offer(push('a', i)), 'held');
  assert.equal(h.offer(push('a', MAX_HELD + 1)), 'overflow');
});
