/**
 * The byte path of a channel message: the push MessagePushBytes writes, and
 * the memory engine's appendBytes stores and returns, is byte for byte the
 * push the text path builds (messagePushParts + assemblePush, encoded as
 * UTF-8) for the data's text; a publish batch walked in place reads as
 * decodePublishEntries decodes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessagePushBytes, assemblePush, messagePushParts } from '../../src/director/push-encoding.js';
import { MemoryEngine } from '../../src/director/engine/memory-engine.js';
import { ChannelRegistry } from '../../src/director/channels.js';
import { HistoryBudget, type HistoryLimits } from '../../src/director/history.js';
import { PublishEntryReader, decodePublishEntries, encodePublishBatch } from '../../src/cluster/batch.js';
import { scanJsonBytes, scannedBytes } from '../../src/protocol/payload.js';
import { pino } from 'pino';
import { DownBatcher } from '../../src/director/down-batcher.js';
import { SendQueue } from '../../src/zmq/send-queue.js';
import { DOWN_BATCH_BYTES, decodeMessageBatch } from '../../src/cluster/batch.js';
import { DownKind, decodeHeader } from '../../src/cluster/wire.js';

let seed = 777;
const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
const gen = (d: number): unknown => {
  const r = rnd();
  if (d > 4 || r < 0.35) return pick([0, -1, 1.5, 1e21, 'a', 'hé "quoted" \\ /', '', 'ü€😀', '\ud800', '\u2028\u2029', true, false, null, 'x'.repeat(80)]);
  if (r < 0.65) return Array.from({ length: Math.floor(rnd() * 4) }, () => gen(d + 1));
  const o: Record<string, unknown> = {};
  for (let k = Math.floor(rnd() * 4); k > 0; k--) o[pick(['a', 'b"c', 'é', 'line'])] = gen(d + 1);
  return o;
};
/** JSON text, sometimes with raw CR and LF between tokens (what oneLine blanks). */
const dataText = (): string => JSON.stringify(gen(0), null, pick([undefined, undefined, 2, '\t', '\r\n', '\n ']));
const textPush = (channel: string, sender: string | null, time: number, data: string, offset: number, epoch: string): Buffer => {
  const { head, tail } = messagePushParts(channel, sender, time, data);
  return Buffer.from(assemblePush(head, offset, epoch, tail), 'utf8');
};

test('MessagePushBytes writes the bytes of the text path, whatever the channel, sender, time, offset, epoch and data', () => {
  const w = new MessagePushBytes();
  const channels = ['room', 'r"o\\om', 'salle-é', 'ch😀', 'a/b:c'];
  const senders = [null, 'alice', 'bö"b', '\u2028', ''];
  const offsets = [1, 9, 10, 99, 100, 12345, 999_999_999, 2 ** 53 - 1];
  let time = 1_764_000_000_000;
  for (let k = 0; k < 5000; k++) {
    const channel = rnd() < 0.8 ? channels[0]! : pick(channels);
    const sender = rnd() < 0.7 ? null : pick(senders);
    if (rnd() < 0.2) time += Math.floor(rnd() * 3);
    const data = dataText();
    const offset = rnd() < 0.5 ? k + 1 : pick(offsets);
    const epoch = rnd() < 0.9 ? 'AbCdEfGh' : pick(['x', 'Zz9-_']);
    // The data inside a larger buffer, as it sits in a publish batch.
    const bytes = Buffer.concat([Buffer.from('garbage'), Buffer.from(data), Buffer.from('more')]);
    const depth = scanJsonBytes(bytes, 7, 7 + Buffer.byteLength(data));
    assert.ok(depth >= 0, data);
    w.message(channel, sender, time, bytes, 7, 7 + Buffer.byteLength(data), scannedBytes.lineBreak);
    w.place(offset, epoch);
    const out = Buffer.alloc(w.size + 6, 0xaa);
    w.writeTo(out, 3);
    const expected = textPush(channel, sender, time, data, offset, epoch);
    assert.equal(w.size, expected.length, data);
    assert.ok(out.subarray(3, 3 + w.size).equals(expected), `${JSON.stringify(data)}:\n${out.subarray(3, 3 + w.size).toString()}\n${expected.toString()}`);
    assert.ok(out.subarray(0, 3).every((b) => b === 0xaa) && out.subarray(3 + w.size).every((b) => b === 0xaa), 'nothing written outside the push');
    assert.equal(w.offset, offset);
    assert.equal(w.epoch, epoch);
  }
});

test('appendBytes sequences, stores and bounds history as append does, with the text path\'s pushes', () => {
  const limitsOf = (maxCount: number, maxBytes: number): HistoryLimits => ({ maxCount, maxAgeMs: 0, maxBytes });
  const defaults = limitsOf(1000, 1 << 30);
  const text = new MemoryEngine(new ChannelRegistry(defaults, new HistoryBudget(4 << 20)));
  const bytes = new MemoryEngine(new ChannelRegistry(defaults, new HistoryBudget(4 << 20)));
  const w = new MessagePushBytes();
  // A busy channel (its pushes go into slabs), a bounded one, one without history, and messages that are not kept.
  const plans = [
    { channel: 'busy', limits: limitsOf(100_000, 1 << 30), store: true },
    { channel: 'small', limits: limitsOf(5, 1 << 30), store: true },
    { channel: 'tight', limits: limitsOf(1000, 2000), store: true },
    { channel: 'none', limits: limitsOf(1000, 1 << 30), store: false },
  ];
  let now = 1_764_000_000_000;
  for (let k = 0; k < 6000; k++) {
    const plan = rnd() < 0.85 ? plans[0]! : pick(plans);
    const sender = rnd() < 0.5 ? null : pick(['w1', 'wörker']);
    if (rnd() < 0.1) now++;
    const data = rnd() < 0.02 ? JSON.stringify({ big: 'y'.repeat(3000) }) : dataText();
    const a = text.append({ channel: plan.channel, ...messagePushParts(plan.channel, sender, now, data), now, store: plan.store, limits: plan.limits });
    const body = Buffer.from(data);
    assert.ok(scanJsonBytes(body, 0, body.length) >= 0);
    w.message(plan.channel, sender, now, body, 0, body.length, scannedBytes.lineBreak);
    const push = bytes.appendBytes(plan.channel, now, plan.store, plan.limits, w);
    const epoch = bytes.position(plan.channel, now).epoch;
    assert.equal(w.offset, a.offset);
    assert.equal(w.epoch, epoch);
    assert.ok(push.equals(textPush(plan.channel, sender, now, data, a.offset, epoch)), data);
    // The same push with the other engine's epoch: the text path's bytes.
    assert.ok(a.push!.equals(textPush(plan.channel, sender, now, data, a.offset, a.epoch)));
  }
  assert.equal(bytes.channels.budget.used, text.channels.budget.used, 'the same bytes charged');
  assert.equal(bytes.channels.budget.count, text.channels.budget.count);
  for (const { channel } of plans) {
    const q = { limit: 1_000_000, maxBytes: Number.MAX_SAFE_INTEGER, now, ttlMs: 0 };
    const [pa, pb] = [text.history(channel, q), bytes.history(channel, q)];
    assert.deepEqual(pb.messages.map((m) => m.offset), pa.messages.map((m) => m.offset), channel);
    for (let i = 0; i < pa.messages.length; i++) {
      const expected = Buffer.from(pa.messages[i]!.push.toString().replace(`"epoch":"${pa.epoch}"`, `"epoch":"${pb.epoch}"`));
      assert.ok(pb.messages[i]!.push.equals(expected), `${channel} ${pa.messages[i]!.offset}`);
    }
  }
  assert.ok(bytes.history('busy', { limit: 1, maxBytes: 1 << 20, now, ttlMs: 0 }).messages[0]!.push.buffer.byteLength > 2048, 'the busy channel has slabs');
  assert.equal(bytes.history('none', { limit: 100, maxBytes: 1 << 20, now, ttlMs: 0 }).messages.length, 0);
});

test('PublishEntryReader walks a publish batch as decodePublishEntries decodes it; names and senders repeat as one string', () => {
  const list = [
    { target: 'channel' as const, name: 'room', data: '{"n":1}', sender: null, noHistory: false },
    { target: 'channel' as const, name: 'room', data: '[1,\n2]', sender: 'bob', noHistory: true },
    { target: 'user' as const, name: 'ü', data: '"x"', sender: 'bob', noHistory: false },
    { target: 'channel' as const, name: 'room', data: '1', sender: 'carol', noHistory: false },
  ];
  const [, body] = encodePublishBatch(list);
  const r = new PublishEntryReader(body!);
  assert.equal(r.count, 4);
  const walked = [];
  const names: string[] = [];
  while (r.next()) {
    walked.push(r.toPublish());
    names.push(r.name());
    assert.equal(body!.toString('utf8', r.dataStart, r.dataEnd), walked.at(-1)!.data);
  }
  assert.deepEqual(walked, decodePublishEntries(body!));
  assert.deepEqual(walked.map(({ bytes, omnibus, ...p }) => p), list);
  assert.equal(names[0], names[1]);
  assert.throws(() => new PublishEntryReader(body!.subarray(0, body!.length - 1)), /longer than its batch/, 'a batch cut short is refused whole');
});

test('a busy channel\'s batches go down as its history slab\'s bytes, uncopied; every message once, in order, history unchanged', async () => {
  const sent: Buffer[][] = [];
  const q = new SendQueue({ send: (m: Buffer[] | Buffer) => (sent.push(m as Buffer[]), Promise.resolve()) }, 1_000_000, pino({ level: 'silent' }), 'test');
  const d = new DownBatcher(q, DOWN_BATCH_BYTES);
  const engine = new MemoryEngine(new ChannelRegistry({ maxCount: 1_000_000, maxAgeMs: 0, maxBytes: 1 << 30 }, new HistoryBudget(1 << 30)));
  const w = new MessagePushBytes();
  const limits = { maxCount: 1_000_000, maxAgeMs: 0, maxBytes: 1 << 30 };
  const expected: Buffer[] = [];
  const now = 1_764_000_000_000;
  let framed = 0;
  // Turns of 150 messages; every 7th goes to a channel without history (not framed) and breaks the busy one's run.
  for (let turn = 0; turn < 60; turn++) {
    for (let k = 0; k < 150; k++) {
      const quiet = k % 7 === 3 && turn % 2 === 1;
      const channel = quiet ? 'quiet' : 'busy';
      const data = Buffer.from(JSON.stringify({ turn, k, pad: 'z'.repeat(k % 90) }));
      scanJsonBytes(data, 0, data.length);
      w.message(channel, null, now, data, 0, data.length, false);
      const push = engine.appendBytes(channel, now, !quiet, limits, w);
      if (w.framed) framed++;
      if (!quiet) expected.push(Buffer.from(push));
      d.message(channel, (name) => Buffer.from(`c${name}\0`), w.offset, w.epoch, push, w.framed);
    }
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(framed > 5000, `most pushes went into slabs (${framed})`);
  const got: Array<[number, Buffer]> = [];
  let uncopied = 0;
  for (const f of sent) {
    if (f[0]!.toString() !== 'cbusy\0') continue;
    const h = decodeHeader(f[1]!)!;
    if (h.kind === DownKind.Message) {
      got.push([h.offset, f[2]!]);
      continue;
    }
    const entries = decodeMessageBatch(f[2]!)!;
    assert.equal(entries[0]!.offset, h.offset);
    for (const e of entries) got.push([e.offset, Buffer.from(e.push)]);
    if (f[2]!.byteLength < f[2]!.buffer.byteLength && f[2]!.buffer.byteLength >= 2048 && f[2]!.buffer === entries[0]!.push.buffer) {
      // A body that is a view into a larger buffer holding history pushes: the slab itself.
      const stored = engine.history('busy', { since: entries[0]!.offset - 1, limit: 1, maxBytes: 1 << 20, now, ttlMs: 0 }).messages[0]!.push;
      if (stored.buffer === f[2]!.buffer) uncopied++;
    }
  }
  assert.deepEqual(got.map(([o]) => o), expected.map((_, i) => i + 1), 'every offset once, in order');
  got.forEach(([, push], i) => assert.ok(push.equals(expected[i]!), `offset ${i + 1}`));
  assert.ok(uncopied > 10, `batches sent as slab bytes: ${uncopied} of ${sent.length}`);
  const page = engine.history('busy', { limit: 1_000_000, maxBytes: Number.MAX_SAFE_INTEGER, now, ttlMs: 0 });
  assert.equal(page.messages.length, expected.length);
  page.messages.forEach((m, i) => assert.ok(m.push.equals(expected[i]!), `history ${i + 1} unchanged by the batch heads written beside it`));
});
