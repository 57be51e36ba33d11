import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DownKind, encodeHeader } from '../../src/cluster/wire.js';
import { positionIn, tickFrames, tickOf, type Tick } from '../../src/cluster/ticks.js';
import { ALL_TOPIC, channelTopic, userTopic } from '../../src/cluster/topics.js';
import { TickRelay } from '../../src/forwarder/tick-relay.js';
import { encodeMessageBatch } from '../../src/cluster/batch.js';

const message = (channel: string, offset: number): Buffer[] => [channelTopic(channel), encodeHeader(DownKind.Message, offset, 'ep'), Buffer.from('{}')];
const batch = (channel: string, first: number, n: number): Buffer[] => {
  const offsets = Array.from({ length: n }, (_, k) => first + k);
  return [channelTopic(channel), encodeHeader(DownKind.MessageBatch, first, 'ep'), encodeMessageBatch(offsets, offsets.map(() => Buffer.from('{}')))];
};
const tickIn = (frames: Buffer[] | null): Tick | null => (frames ? tickOf(JSON.parse(frames[2]!.toString('utf8')) as Record<string, unknown>) : null);

test('positionIn: channel messages and probes carry a position; direct pushes and controls none', () => {
  assert.deepEqual(positionIn(message('room', 7)), { channel: 'room', offset: 7, epoch: 'ep' });
  assert.deepEqual(positionIn([channelTopic('room'), encodeHeader(DownKind.Probe, 3, 'ep'), Buffer.from('{}')]), { channel: 'room', offset: 3, epoch: 'ep' });
  assert.equal(positionIn([userTopic('bob'), encodeHeader(DownKind.Direct, 0, ''), Buffer.from('{}')]), undefined);
  assert.equal(positionIn(tickFrames('run', 1)), undefined);
});

test('positionIn: a batch names its last entry (a peer that missed it is below its first, one that got it at its last)', () => {
  assert.deepEqual(positionIn(batch('room', 7, 3)), { channel: 'room', offset: 9, epoch: 'ep' });
  // A body that does not add up: the header's first offset still shows a peer that missed the batch.
  const cut = batch('room', 7, 3);
  cut[2] = cut[2]!.subarray(0, cut[2]!.length - 1);
  assert.deepEqual(positionIn(cut), { channel: 'room', offset: 7, epoch: 'ep' });
});

test('tickOf: a tick round-trips with its missed position; malformed ones are refused', () => {
  assert.deepEqual(tickIn(tickFrames('r', 4, { channel: 'c', offset: 9, epoch: 'e' })), { run: 'r', seq: 4, missed: { channel: 'c', offset: 9, epoch: 'e' } });
  assert.deepEqual(tickIn(tickFrames('r', 4)), { run: 'r', seq: 4 });
  assert.equal(tickOf({ op: 'tick', run: 'r', seq: 1.5 }), null);
  assert.equal(tickOf({ op: 'tick', run: 1, seq: 1 }), null);
  assert.deepEqual(tickOf({ op: 'tick', run: 'r', seq: 1, missed: { channel: 'c' } }), { run: 'r', seq: 1 });
});

test('TickRelay: each marker takes a number of its own; an edge that gets everything sees numbers in a row, one that missed a marker sees one skipped', () => {
  const relay = new TickRelay();
  assert.equal(relay.marker(message('room', 1)), null, 'no marker before any tick: no run to number it in');
  const other = [channelTopic('room'), encodeHeader(DownKind.Message, 2, 'ep'), Buffer.from('{}')];
  assert.equal(relay.relay(other), other, 'anything but a tick passes unchanged');
  const control = [ALL_TOPIC, encodeHeader(DownKind.Control, 0, ''), Buffer.from('{"op":"reset"}')];
  assert.equal(relay.relay(control), control);

  const sent: Tick[] = [];
  sent.push(tickIn(relay.relay(tickFrames('run', 10)))!);
  sent.push(tickIn(relay.marker(message('room', 5)))!);
  sent.push(tickIn(relay.marker(message('room', 6)))!);
  sent.push(tickIn(relay.relay(tickFrames('run', 11, { channel: 'x', offset: 1, epoch: 'e' })))!);
  sent.push(tickIn(relay.relay(tickFrames('run', 13)))!); // the director's tick 12 never came: its skip stays
  assert.deepEqual(
    sent.map((t) => t.seq),
    [10, 11, 12, 13, 15],
  );
  assert.deepEqual(sent[1]!.missed, { channel: 'room', offset: 5, epoch: 'ep' }, 'a marker names what was shed');
  assert.deepEqual(sent[3]!.missed, { channel: 'x', offset: 1, epoch: 'e' }, "the director's own marker passes on");
  assert.ok(sent.every((t) => t.run === 'run'));
});

test('TickRelay: a batch passes unchanged, and the marker after a shed batch names its last offset', () => {
  const relay = new TickRelay();
  const b = batch('room', 20, 4);
  assert.equal(relay.relay(b), b);
  const sent: Tick[] = [tickIn(relay.relay(tickFrames('run', 3)))!, tickIn(relay.marker(b))!, tickIn(relay.relay(tickFrames('run', 4)))!];
  assert.deepEqual(sent.map((t) => t.seq), [3, 4, 5]);
  assert.deepEqual(sent[1]!.missed, { channel: 'room', offset: 23, epoch: 'ep' });
});
