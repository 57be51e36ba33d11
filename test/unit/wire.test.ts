import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHeader, DownKind, encodeHeader, encodePublish, parsePublish, PUBLISH_MARKER, WireError } from '../../src/cluster/wire.js';

const b = (s: string): Buffer => Buffer.from(s);

test('native multipart publish parses', () => {
  const p = parsePublish([b(PUBLISH_MARKER), b('channel'), b('room1'), b('{"a":1}'), b('{"sender":"worker","no_history":true}')]);
  assert.deepEqual(p, { target: 'channel', name: 'room1', data: '{"a":1}', sender: 'worker', noHistory: true, omnibus: false });
  const u = parsePublish([b(PUBLISH_MARKER), b('user'), b('bob'), b('"hi"')]);
  assert.equal(u.target, 'user');
  assert.equal(u.sender, null);
});

test('omnibus single-frame publish parses: channel before the first colon', () => {
  const p = parsePublish([b('room1:{"type":"chat","sender":"w","payload":{"x":"a:b"}}')]);
  assert.equal(p.name, 'room1');
  assert.equal(p.data, '{"type":"chat","sender":"w","payload":{"x":"a:b"}}');
  assert.equal(p.omnibus, true);
});

test('malformed publishes are rejected with a reason', () => {
  assert.throws(() => parsePublish([b('no colon here')]), WireError);
  assert.throws(() => parsePublish([b(':{}')]), /channel:\{json\}/);
  assert.throws(() => parsePublish([b('x'), b('y')]), /4 or 5 frames/);
  assert.throws(() => parsePublish([b('other/1'), b('channel'), b('a'), b('1')]), /first frame/);
  assert.throws(() => parsePublish([b(PUBLISH_MARKER), b('group'), b('a'), b('1')]), /second frame/);
  assert.throws(() => parsePublish([b(PUBLISH_MARKER), b('channel'), b('a'), b('1'), b('not json')]), /options frame/);
  assert.throws(() => parsePublish([b(PUBLISH_MARKER), b('channel'), b('a'), b('1'), b('{"sender":5}')]), /sender/);
  assert.throws(() => parsePublish([b(PUBLISH_MARKER), b('channel'), b('a'), b('1'), b('[]')]), /object/);
});

test('encodePublish round-trips through parsePublish', () => {
  const p = { target: 'channel' as const, name: 'c', data: '{"k":[1,2]}', sender: 's', noHistory: false };
  assert.deepEqual(parsePublish(encodePublish(p)), { ...p, omnibus: false });
});

test('downstream header round-trips offset and epoch', () => {
  const h = encodeHeader(DownKind.Message, 2 ** 40 + 3, 'Qh5QE6fn');
  assert.deepEqual(decodeHeader(h), { kind: DownKind.Message, offset: 2 ** 40 + 3, epoch: 'Qh5QE6fn' });
  assert.equal(decodeHeader(Buffer.alloc(3)), undefined);
  assert.equal(decodeHeader(Buffer.concat([Buffer.from([99]), Buffer.alloc(8)])), undefined);
});
