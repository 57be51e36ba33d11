import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import {
  BATCH_ID,
  DOWN_BATCH_BYTES,
  downPipeSlots,
  pipeSlots,
  queueBytes,
  HWM_UNIT_BYTES,
  MAX_BATCH_BYTES,
  decodeCommandBatch,
  decodeMessageBatch,
  decodePublishEntries,
  publishEntryBytes,
  decodeReplyBatch,
  encodeCommandBatch,
  encodeMessageBatch,
  encodePublishBatch,
  encodePublishEntry,
  encodeReplyBatch,
  isBatchFrames,
  isPublishBatch,
  messagesIn,
  PUBLISH_BATCH_MARKER,
  PUBLISH_BATCH_METHOD,
  PublishEntryWriter,
  PublishOutcomeWriter,
  eachPublishOutcome,
} from '../../src/cluster/batch.js';
import { decodeHeader, DownKind, WireError, type InboundPublish } from '../../src/cluster/wire.js';
import { DownBatcher } from '../../src/director/down-batcher.js';
import { ReplyBatcher } from '../../src/director/reply-batcher.js';
import { SendQueue } from '../../src/zmq/send-queue.js';

const b = (s: string): Buffer => Buffer.from(s);
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const log = pino({ level: 'silent' });

test('a message batch round-trips offsets and pushes, from raw bytes', () => {
  const body = encodeMessageBatch([7, 8, 9], [b('{"a":1}'), b(''), b('{"c":"é"}')]);
  assert.equal(body.length, 3 * 12 + 7 + 0 + 10);
  const out = decodeMessageBatch(body)!;
  assert.deepEqual(out.map((e) => e.offset), [7, 8, 9]);
  assert.deepEqual(out.map((e) => e.push.toString()), ['{"a":1}', '', '{"c":"é"}']);
  assert.equal(messagesIn('down', [b('t'), Buffer.from([DownKind.MessageBatch, ...new Array(8).fill(0)]), body]), 3);
});

test('a message batch that does not add up is refused whole', () => {
  const body = encodeMessageBatch([1, 2], [b('xx'), b('yy')]);
  assert.equal(decodeMessageBatch(body.subarray(0, body.length - 1)), undefined, 'last entry cut short');
  assert.equal(decodeMessageBatch(body.subarray(0, 20)), undefined, 'second head cut short');
  assert.equal(decodeMessageBatch(Buffer.alloc(0)), undefined, 'empty');
  const long = Buffer.from(body);
  long.writeUInt32BE(1000, 8);
  assert.equal(decodeMessageBatch(long), undefined, 'length past the end');
  const negative = Buffer.from(body);
  negative.writeDoubleBE(-1, 0);
  assert.equal(decodeMessageBatch(negative), undefined, 'negative offset');
  const fraction = Buffer.from(body);
  fraction.writeDoubleBE(1.5, 0);
  assert.equal(decodeMessageBatch(fraction), undefined, 'fractional offset');
});

test('publish entries round-trip every field and refuse malformed bodies', () => {
  const list: InboundPublish[] = [
    { target: 'channel', name: 'room-1', data: '{"t":"hé"}', sender: 'alice', noHistory: true, omnibus: false },
    { target: 'user', name: 'bob', data: '1', sender: null, noHistory: false, omnibus: false },
    { target: 'channel', name: 'r', data: '""', sender: '', noHistory: false, omnibus: false },
  ];
  const frames = encodePublishBatch(list);
  assert.ok(isPublishBatch(frames));
  assert.equal(frames[0]!.toString(), PUBLISH_BATCH_MARKER);
  // Each decoded entry carries its size on the wire: what publishEntryBytes measures of it (the director's size limit).
  const sized = list.map((p) => ({ ...p, bytes: publishEntryBytes(p) }));
  assert.deepEqual(decodePublishEntries(frames[1]!), sized);
  assert.equal(messagesIn('up', frames), 3);
  assert.deepEqual(decodePublishEntries(encodePublishEntry(list[0]!), true), [sized[0]]);
  // An entry written alone has the bytes it has in a batch.
  assert.deepEqual(Buffer.concat(list.map((p) => encodePublishEntry(p))), frames[1]);
  assert.throws(() => encodePublishEntry({ ...list[0]!, name: 'é'.repeat(40_000) }), /longer than 65535/);
  assert.throws(() => decodePublishEntries(frames[1]!, true), /one publish entry/);
  assert.throws(() => decodePublishEntries(frames[1]!.subarray(0, frames[1]!.length - 1)), WireError);
  assert.throws(() => decodePublishEntries(Buffer.alloc(0)), /empty/);
  const badTarget = Buffer.from(frames[1]!);
  badTarget[0] = 0x78;
  assert.throws(() => decodePublishEntries(badTarget), /target/);
  const badFlags = Buffer.from(frames[1]!);
  badFlags[1] = 0x80;
  assert.throws(() => decodePublishEntries(badFlags), /flags/);
  const senderWithoutFlag = Buffer.from(frames[1]!);
  senderWithoutFlag[1] = 0;
  assert.throws(() => decodePublishEntries(senderWithoutFlag), /sender length/);
  assert.equal(isPublishBatch([b('tidings/1'), frames[1]!]), false);
});

test('PublishEntryWriter writes the entries encodePublishEntry writes, from text or bytes, names and senders changing or not', () => {
  const w = new PublishEntryWriter(16); // small: it grows
  const list: InboundPublish[] = [];
  for (let i = 0; i < 300; i++) {
    const name = ['room', 'room', 'é-room', 'r'][i % 4]!;
    const sender = i % 5 === 0 ? null : ['alice', 'bob', 'ü'][i % 3]!;
    const data = JSON.stringify({ i, s: 'x'.repeat(i % 7), u: i % 2 ? 'é😀' : '' });
    const p: InboundPublish = { target: 'channel', name, data, sender, noHistory: i % 3 === 0, omnibus: false };
    list.push(p);
    const bytes = i % 2 ? w.addText(name, sender, p.noHistory, data) : w.addBytes(name, sender, p.noHistory, Buffer.from(`[${data}]`), 1, 1 + Buffer.byteLength(data));
    assert.equal(bytes, publishEntryBytes(p));
  }
  assert.equal(w.count, 300);
  const body = w.take();
  assert.deepEqual(body, Buffer.concat(list.map((p) => encodePublishEntry(p))));
  assert.equal(w.count, 0);
  assert.equal(w.bytes, 0);
  // dropLast forgets the entry just written; take() starts afresh.
  w.addText('a', null, false, '1');
  const kept = w.bytes;
  w.addText('b', 'me', true, '2');
  w.dropLast(kept);
  assert.deepEqual(decodePublishEntries(w.take()).map((p) => [p.name, p.data]), [['a', '1']]);
  assert.throws(() => w.addText('é'.repeat(40_000), null, false, '1'), /longer than 65535/);
  assert.throws(() => w.addText('a', 'é'.repeat(40_000), false, '1'), /longer than 65535/);
  assert.equal(w.bytes, 0, 'nothing written for a refused entry');
  // A publish_batch command counts as its publishes where a forwarder counts messages.
  w.addText('a', null, false, '1');
  w.addText('a', null, false, '2');
  const pb = w.take();
  assert.equal(messagesIn('cmd', [b('route'), ...encodeCommandBatch([{ id: 1, method: PUBLISH_BATCH_METHOD, body: pb }, { id: 2, method: 'ping', body: b('{}') }])]), 3);
  assert.equal(messagesIn('cmd', [b('route'), Buffer.from([0, 0, 0, 9]), b(PUBLISH_BATCH_METHOD), pb]), 2);
});

test('a publish_batch reply: one outcome per entry, in order; one that does not hold exactly its entries is refused whole', () => {
  const w = new PublishOutcomeWriter(1); // small: it grows
  w.ok(17, 'E1');
  w.error(b('{"code":121,"message":"bad"}'));
  w.ok(18, 'E1');
  w.ok(1e15, 'é"2');
  for (const offset of [0, 9, 10, 99, 100, 123456789, Number.MAX_SAFE_INTEGER]) w.ok(offset, 'E1');
  const body = w.finish();
  const seen: Array<[number, boolean, unknown]> = [];
  assert.equal(eachPublishOutcome(body, 11, (i, ok, start, end) => seen.push([i, ok, JSON.parse(body.toString('utf8', start, end))])), true);
  assert.deepEqual(seen.slice(4).map(([, , v]) => (v as { offset: number }).offset), [0, 9, 10, 99, 100, 123456789, Number.MAX_SAFE_INTEGER]);
  seen.length = 4;
  assert.deepEqual(seen, [
    [0, true, { offset: 17, epoch: 'E1' }],
    [1, false, { code: 121, message: 'bad' }],
    [2, true, { offset: 18, epoch: 'E1' }],
    [3, true, { offset: 1e15, epoch: 'é"2' }],
  ]);
  // What publish_text answers, byte for byte.
  assert.equal(body.toString('utf8', 5, 5 + body.readUInt32BE(1)), JSON.stringify({ offset: 17, epoch: 'E1' }));
  const none = (): void => assert.fail('no outcome of a malformed reply is used');
  assert.equal(eachPublishOutcome(body, 10, none), false, 'more outcomes than entries');
  assert.equal(eachPublishOutcome(body, 12, none), false, 'fewer outcomes than entries');
  assert.equal(eachPublishOutcome(body.subarray(0, body.length - 1), 11, none), false, 'cut short');
  const badStatus = Buffer.from(body);
  badStatus[0] = 2;
  assert.equal(eachPublishOutcome(badStatus, 11, none), false, 'unknown status');
  const long = Buffer.from(body);
  long.writeUInt32BE(1 << 20, 1);
  assert.equal(eachPublishOutcome(long, 11, none), false, 'length past the end');
});

test('command and reply batches round-trip; malformed ones are refused', () => {
  const frames = encodeCommandBatch([
    { id: 1, method: 'publish', body: b('{"channel":"a"}') },
    { id: 0x7fffffff, method: 'history', body: b('{}') },
  ]);
  assert.equal(frames.length, 3);
  assert.ok(isBatchFrames(frames[0]!, frames[1]!));
  assert.ok(!isBatchFrames(Buffer.from([0, 0, 0, 1]), frames[1]!), 'a real request id is no batch');
  const cmds = decodeCommandBatch(frames[2]!);
  assert.deepEqual(cmds.map((c) => [c.id, c.method, c.body.toString()]), [[1, 'publish', '{"channel":"a"}'], [0x7fffffff, 'history', '{}']]);
  assert.equal(messagesIn('cmd', [b('route'), ...frames]), 2);
  assert.throws(() => decodeCommandBatch(frames[2]!.subarray(0, 12)), WireError);
  const zero = Buffer.from(frames[2]!);
  zero.writeUInt32BE(0, 0);
  assert.throws(() => decodeCommandBatch(zero), /without an id/);

  const replies = encodeReplyBatch([
    { id: 4, ok: true, body: b('{"offset":1,"epoch":"E"}') },
    { id: 5, ok: false, body: b('{"code":103}') },
  ]);
  assert.ok(replies[0]!.equals(BATCH_ID));
  const back = decodeReplyBatch(replies[2]!)!;
  assert.deepEqual(back.map((r) => [r.id, r.ok, r.body.toString()]), [[4, true, '{"offset":1,"epoch":"E"}'], [5, false, '{"code":103}']]);
  assert.equal(messagesIn('reply', replies), 2);
  const badStatus = Buffer.from(replies[2]!);
  badStatus[4] = 2;
  assert.equal(decodeReplyBatch(badStatus), undefined);
  assert.equal(decodeReplyBatch(replies[2]!.subarray(0, replies[2]!.length - 1)), undefined);
});

/** A socket stand-in for SendQueue: records what was sent. */
function recorder(): { sent: Buffer[][]; send(m: Buffer[] | Buffer): Promise<void> } {
  const sent: Buffer[][] = [];
  return { sent, send: (m) => (sent.push(m as Buffer[]), Promise.resolve()) };
}

test('DownBatcher: a channel\'s messages of one turn go as one batch, alone as a plain message, other frames keep their place', async () => {
  const sock = recorder();
  const q = new SendQueue(sock, 100, log, 'test');
  const d = new DownBatcher(q, 1 << 20);
  const topic = (name: string) => () => b(`c${name}\0`);
  d.message('a', topic('a'), 1, 'E', b('p1'));
  d.message('a', topic('a'), 2, 'E', b('p2'));
  d.message('b', topic('b'), 1, 'E', b('q1'));
  d.message('a', topic('a'), 3, 'E', b('p3'));
  // A probe for a is sequenced behind a's three messages: the batch goes first.
  assert.ok(d.other([b('ca\0'), b('probe'), b('{}')]));
  d.message('a', topic('a'), 4, 'E', b('p4'));
  await turn();
  await turn();
  const kinds = sock.sent.map((f) => [f[0]!.toString(), decodeHeader(f[1]!)?.kind ?? f[1]!.toString()]);
  assert.deepEqual(kinds, [['ca\0', DownKind.MessageBatch], ['cb\0', DownKind.Message], ['ca\0', 'probe'], ['ca\0', DownKind.Message]]);
  const first = decodeMessageBatch(sock.sent[0]![2]!)!;
  assert.deepEqual(first.map((e) => [e.offset, e.push.toString()]), [[1, 'p1'], [2, 'p2'], [3, 'p3']]);
  assert.equal(decodeHeader(sock.sent[0]![1]!)!.offset, 1);
  assert.equal(sock.sent[3]![2]!.toString(), 'p4');
});

test('DownBatcher: a batch holds consecutive offsets of one epoch and stays under its size', async () => {
  const sock = recorder();
  const q = new SendQueue(sock, 100, log, 'test');
  const d = new DownBatcher(q, 12 * 2 + 4);
  const t = () => b('cx\0');
  d.message('x', t, 1, 'E', b('aa'));
  d.message('x', t, 2, 'E', b('bb'));
  d.message('x', t, 3, 'E', b('cc')); // over the size: a new batch
  d.message('x', t, 1, 'F', b('dd')); // new epoch: a new batch
  d.message('x', t, 5, 'F', b('ee')); // not consecutive: a new batch
  await turn();
  await turn();
  const got = sock.sent.map((f) => {
    const h = decodeHeader(f[1]!)!;
    const offsets = h.kind === DownKind.MessageBatch ? decodeMessageBatch(f[2]!)!.map((e) => e.offset) : [h.offset];
    return [h.epoch, offsets];
  });
  assert.deepEqual(got, [['E', [1, 2]], ['E', [3]], ['F', [1]], ['F', [5]]]);
});

test('DownBatcher: pending batches count against the send queue\'s limit', async () => {
  let release: () => void = () => undefined;
  const sent: Buffer[][] = [];
  // A socket that does not take anything until released: the queue fills.
  let held = true;
  const sock = {
    send: (m: Buffer[] | Buffer) => {
      sent.push(m as Buffer[]);
      return held ? new Promise<void>((r) => (release = r)) : Promise.resolve();
    },
  };
  const q = new SendQueue(sock, 3, log, 'test');
  const d = new DownBatcher(q, 1 << 20);
  for (let i = 0; i < 3; i++) d.message(`ch${i}`, () => b(`c${i}\0`), 1, 'E', b('x'));
  assert.ok(d.full, 'three channels pending fill a queue of three');
  assert.throws(() => d.message('ch9', () => b('c9\0'), 1, 'E', b('x')), /send queue full/);
  // More of a pending channel's stream still joins its batch: it takes no more room.
  d.message('ch0', () => b('c0\0'), 2, 'E', b('y'));
  // space() hands the pending batches to the queue and waits for room, which comes once the socket takes them.
  let spaced = false;
  const space = d.space().then(() => (spaced = true));
  await turn();
  assert.equal(spaced, false, 'no room while the socket takes nothing');
  assert.equal(q.length, 3, 'the three batches went to the queue (the first one in the socket still counts)');
  held = false;
  release();
  await space;
  assert.ok(!d.full);
  d.message('ch9', () => b('c9\0'), 1, 'E', b('x'));
  await turn();
  await turn();
  assert.equal(messagesIn('down', sent[0]!), 2);
});

test('DownBatcher: pending batches count against the send queue\'s byte budget; a batch ends at it and the next message finds the queue full', async () => {
  let release: () => void = () => undefined;
  let held = true;
  const sent: Buffer[][] = [];
  const sock = {
    send: (m: Buffer[] | Buffer) => {
      sent.push(m as Buffer[]);
      return held ? new Promise<void>((r) => (release = r)) : Promise.resolve();
    },
  };
  // Room for 1 000 messages but only 1 000 bytes: 100-byte pushes (112 bytes an entry) fill it after 9.
  const q = new SendQueue(sock, 1000, log, 'test', { maxBytes: 1000 });
  const d = new DownBatcher(q, 1 << 20);
  const push = Buffer.alloc(100, 0x61);
  let offset = 0;
  while (!d.full && offset < 100) d.message('x', () => b('cx\0'), ++offset, 'E', push);
  assert.equal(offset, 9, 'the budget is reached after 9 entries, whatever the room in messages');
  assert.throws(() => d.message('y', () => b('cy\0'), 1, 'E', push), /send queue full/);
  // A message of the pending channel past the budget ends the batch (handed to the queue) and is refused too.
  assert.throws(() => d.message('x', () => b('cx\0'), ++offset, 'E', push), /send queue full/);
  assert.equal(q.length, 1, 'the batch of 9 went to the queue');
  assert.ok(q.bytes >= 1000 && q.full, 'the queue counts its bytes');
  let spaced = false;
  const space = d.space().then(() => (spaced = true));
  await turn();
  assert.equal(spaced, false, 'no room while the socket takes nothing');
  held = false;
  release();
  await space;
  assert.ok(!d.full);
  assert.equal(q.bytes, 0);
  assert.equal(messagesIn('down', sent[0]!), 9);
});

test('pipes and send queues of batches hold as many bytes in full batches as zmq_high_water_mark 2 KB batches did', () => {
  for (const hwm of [8000, 200_000, 1_000_000]) {
    for (const [slots, size] of [
      [pipeSlots(hwm), MAX_BATCH_BYTES],
      [downPipeSlots(hwm), DOWN_BATCH_BYTES],
    ] as const) {
      assert.ok(slots * size <= hwm * HWM_UNIT_BYTES + size, `${hwm}: ${slots} slots of ${size} bytes`);
      assert.ok(slots * size >= hwm * HWM_UNIT_BYTES, `${hwm}: no fewer bytes than before`);
    }
    assert.equal(queueBytes(hwm), hwm * HWM_UNIT_BYTES);
  }
  // The smallest marks keep a few ZeroMQ messages in every pipe, whatever the batches' size.
  assert.equal(downPipeSlots(1000), 8);
  assert.equal(HWM_UNIT_BYTES, 2048);
  assert.ok(DOWN_BATCH_BYTES > MAX_BATCH_BYTES);
});

test('ReplyBatcher: the replies of a turn go back per caller in one batch, a lone one plain', async () => {
  const out: Buffer[][] = [];
  const r = new ReplyBatcher((f) => out.push(f));
  r.add([b('A')], 1, true, b('1'));
  r.add([b('B')], 2, false, b('{"code":1}'));
  r.add([b('A')], 3, true, b('3'));
  await turn();
  assert.equal(out.length, 2);
  const a = out.find((f) => f[0]!.toString() === 'A')!;
  assert.ok(isBatchFrames(a[1]!, a[2]!));
  assert.deepEqual(decodeReplyBatch(a[3]!)!.map((e) => [e.id, e.ok, e.body.toString()]), [[1, true, '1'], [3, true, '3']]);
  const lone = out.find((f) => f[0]!.toString() === 'B')!;
  assert.equal(lone[1]!.readUInt32BE(0), 2);
  assert.equal(lone[2]!.toString(), 'error');
});

test('messagesIn counts what it walks on every path, whatever the entries\' lengths (each byte of a length prefix read in its place)', () => {
  // Random batches with lengths that use every byte of their prefixes (name and sender over 255 bytes, pushes
  // and data over 65 535): the count a forwarder adds to tidings_forwarder_messages_total is the decoders' count.
  let seed = 17;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const sizes = [0, 1, 255, 256, 300, 65_535, 65_536, 70_001];
  const header = Buffer.from([DownKind.MessageBatch, ...new Array(8).fill(0)]);
  for (let round = 0; round < 40; round++) {
    const n = 1 + rnd(5);
    const pushes = Array.from({ length: n }, () => Buffer.alloc(sizes[rnd(sizes.length)]!, 0x61));
    const body = encodeMessageBatch(pushes.map((_, i) => i), pushes);
    assert.equal(messagesIn('down', [b('t'), header, body]), decodeMessageBatch(body)!.length);
    const list: InboundPublish[] = Array.from({ length: n }, () => ({
      target: 'channel',
      name: 'n'.repeat(1 + rnd(400)),
      data: JSON.stringify('d'.repeat(sizes[rnd(sizes.length)]!)),
      sender: rnd(2) === 0 ? null : 's'.repeat(rnd(400)),
      noHistory: false,
      omnibus: false,
    }));
    const frames = encodePublishBatch(list);
    assert.equal(messagesIn('up', frames), decodePublishEntries(frames[1]!).length);
  }
  // A length whose high bytes point past the end is a body that does not add up: counted as one message.
  const body = encodeMessageBatch([1, 2], [b('xx'), b('yy')]);
  for (const at of [8, 9, 10]) {
    const bad = Buffer.from(body);
    bad[at] = 1;
    assert.equal(messagesIn('down', [b('t'), header, bad]), 1, `byte ${at} of the first length`);
  }
  const pub = encodePublishBatch([
    { target: 'channel', name: 'r', data: '1', sender: null, noHistory: false, omnibus: false },
    { target: 'channel', name: 'r', data: '2', sender: null, noHistory: false, omnibus: false },
  ]);
  for (const at of [2, 4, 6, 7, 8]) {
    const bad = [pub[0]!, Buffer.from(pub[1]!)];
    bad[1]![at] = 1;
    assert.equal(messagesIn('up', bad), 1, `byte ${at} of the first entry's head`);
  }
});
