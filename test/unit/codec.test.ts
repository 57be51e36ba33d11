import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, decodeJsonFrame, encodeFrame, encodeMsgpack } from '../../src/protocol/codec.js';
import { encodeDirectPush, encodeMessagePush } from '../../src/director/push-encoding.js';
import { textFrame, SharedPush } from '../../src/edge/frames.js';

test('JSON frames hold one object or several separated by newlines', () => {
  assert.deepEqual(decodeJsonFrame('{"a":1}'), [{ a: 1 }]);
  assert.deepEqual(decodeJsonFrame('{"a":1}\n{"b":2}\n'), [{ a: 1 }, { b: 2 }]);
  assert.deepEqual(decodeJsonFrame(Buffer.from('{"a":"é"}')), [{ a: 'é' }]);
  assert.throws(() => decodeJsonFrame('{"a":'));
  assert.throws(() => decodeJsonFrame(Buffer.from([0xff, 0xfe])), 'invalid UTF-8 is rejected');
});

test('MessagePack frames round-trip, several values per frame', () => {
  const one = encodeFrame('msgpack', { id: 1, method: 'ping' }) as Uint8Array;
  const two = Buffer.concat([one, encodeMsgpack({ type: 'pong' })]);
  assert.deepEqual(decodeFrame('msgpack', two), [{ id: 1, method: 'ping' }, { type: 'pong' }]);
  assert.throws(() => decodeFrame('msgpack', 'text'));
});

test('a message push is encoded once as single-line JSON with every field', () => {
  const buf = encodeMessagePush('room1', 7, 'ep', 'alice', 1000, '{\n  "x": "line"\n}');
  const text = buf.toString();
  assert.ok(!text.includes('\n'), 'pretty-printed data must not break newline batching');
  assert.deepEqual(JSON.parse(text), { type: 'message', channel: 'room1', offset: 7, epoch: 'ep', sender: 'alice', time: 1000, data: { x: 'line' } });
  assert.deepEqual(JSON.parse(encodeMessagePush('c"q', 1, 'e', null, 5, '3').toString()), {
    type: 'message', channel: 'c"q', offset: 1, epoch: 'e', sender: null, time: 5, data: 3,
  });
  assert.deepEqual(JSON.parse(encodeDirectPush('bob', 'sys', 9, '"hi"').toString()), { type: 'direct', user: 'bob', sender: 'sys', time: 9, data: 'hi' });
});

test('server text frames are unmasked RFC 6455 frames, built once', () => {
  const small = textFrame(Buffer.from('hello'));
  assert.deepEqual([...small.subarray(0, 2)], [0x81, 5]);
  assert.equal(small.subarray(2).toString(), 'hello');
  const mid = textFrame(Buffer.alloc(300, 97));
  assert.deepEqual([...mid.subarray(0, 4)], [0x81, 126, 1, 44]);
  const big = textFrame(Buffer.alloc(70000, 97));
  assert.equal(big[1], 127);
  assert.equal(big.readUInt32BE(6), 70000);
  const push = new SharedPush(Buffer.from('{"type":"ping"}'));
  assert.equal(push.forJson(), push.forJson(), 'the frame is cached, not rebuilt per subscriber');
  assert.deepEqual(decodeFrame('msgpack', push.forMsgpack().subarray(2)), [{ type: 'ping' }]);
});
