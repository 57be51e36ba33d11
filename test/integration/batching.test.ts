/**
 * Batches across the ZeroMQ hops keep every guarantee of single messages.
 *
 * An edge-only node (a real process) runs against a director played by this
 * test: an XPUB on the node's subscriber address and a ROUTER on its command
 * address, answering the edge's commands (batched or not) and sending
 * crafted MessageBatch frames down. So the test decides exactly what a batch
 * holds: consecutive offsets are delivered in order, a hole inside a batch
 * closes the subscriber with 4006 (the edge checks every entry, not only the
 * batch's first offset), another epoch with 4008, a duplicate prefix is skipped, and a malformed batch
 * is ignored without harming the connection.
 *
 * A real single node with the smallest high-water mark then takes a publish
 * batch wider than its send queue: every publish of it is sequenced (each
 * waits for room, as a lone message does), none refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Router, XPublisher } from 'zeromq';
import { serveEdgeOnly, startSingleNode, type SingleNode, type TidingsProcess } from '../helpers/processes.js';
import { metric } from '../helpers/http.js';
import { Publisher } from '../../src/publisher/publisher.js';
import { freePorts } from '../helpers/ports.js';
import { TestClient } from '../helpers/client.js';
import { MsgpackClient } from '../helpers/msgpack-client.js';
import { MAX_BATCH_ENTRIES, decodeCommandBatch, encodeMessageBatch, encodeReplyBatch, isBatchFrames } from '../../src/cluster/batch.js';
import { DownKind, encodeHeader } from '../../src/cluster/wire.js';
import { channelTopic, userTopic } from '../../src/cluster/topics.js';

const EPOCH = 'batchE1';
let node: TidingsProcess;
let single: SingleNode | undefined;
let url = '';
let xpub: XPublisher;
let router: Router;
const clients: TestClient[] = [];
const mpClients: MsgpackClient[] = [];
/** Where each channel's stream stands, as the fake director tells probes. */
const positions = new Map<string, number>();

function answer(method: string, body: Buffer): unknown {
  const b = JSON.parse(body.toString('utf8') || 'null') as Record<string, unknown> | null;
  if (method === 'probe' && b && b['kind'] === 'channel') {
    const name = String(b['name']);
    const offset = positions.get(name) ?? 0;
    void xpub.send([channelTopic(name), encodeHeader(DownKind.Probe, offset, EPOCH), Buffer.from(JSON.stringify({ token: b['token'] }))]);
    return { offset, epoch: EPOCH };
  }
  if (method === 'probe' && b && b['kind'] === 'user') {
    void xpub.send([userTopic(String(b['name'])), encodeHeader(DownKind.Probe, 0, ''), Buffer.from(JSON.stringify({ token: b['token'] }))]);
    return { offset: 0, epoch: '' };
  }
  if (method === 'ping') return { time: Date.now() };
  if (method === 'edge_report') return { resync: false };
  return {};
}

/**
 * A `history` read, answered (raw, as the director does) by what the test
 * put in `histories`: before the page goes back, `live` is sent down the
 * channel as a batch and given time to reach the edge, so live messages
 * arrive while the recovering client's channel is held.
 */
const histories = new Map<string, { offsets: number[]; live: number[] }>();

async function answerHistory(route: Buffer[], id: number, body: Buffer): Promise<void> {
  const q = JSON.parse(body.toString('utf8')) as { channel: string; since?: number };
  const h = histories.get(q.channel) ?? { offsets: [], live: [] };
  const offsets = h.offsets.filter((o) => q.since === undefined || o > q.since);
  if (h.live.length > 0) {
    await sendBatch(q.channel, h.live);
    h.live = [];
    await new Promise((r) => setTimeout(r, 200));
  }
  const idBuf = Buffer.alloc(4);
  idBuf.writeUInt32BE(id);
  const offset = positions.get(q.channel) ?? 0;
  const head = { channel: q.channel, epoch: EPOCH, offset, complete: true, more: false, available: offsets.length, offsets };
  await router.send([...route, idBuf, Buffer.from('ok'), Buffer.from(JSON.stringify(head)), ...offsets.map((o) => push(q.channel, o))]);
}

async function serveCommands(): Promise<void> {
  for await (const frames of router) {
    const route = frames.slice(0, frames.length - 3);
    const [id, method, body] = frames.slice(frames.length - 3) as [Buffer, Buffer, Buffer];
    if (isBatchFrames(id, method)) {
      const entries = decodeCommandBatch(body);
      const replies = entries.filter((e) => e.method !== 'history').map((e) => ({ id: e.id, ok: true, body: Buffer.from(JSON.stringify(answer(e.method, e.body))) }));
      if (replies.length > 0) await router.send([...route, ...encodeReplyBatch(replies)]);
      for (const e of entries) if (e.method === 'history') await answerHistory(route, e.id, e.body);
    } else if (method.toString() === 'history') {
      await answerHistory(route, id.readUInt32BE(0), body);
    } else {
      await router.send([...route, id, Buffer.from('ok'), Buffer.from(JSON.stringify(answer(method.toString(), body)))]);
    }
  }
}

before(async () => {
  const [port, sub, cmd, pub] = await freePorts(4);
  xpub = new XPublisher({ linger: 0 });
  router = new Router({ linger: 0 });
  await xpub.bind(`tcp://127.0.0.1:${sub}`);
  await router.bind(`tcp://127.0.0.1:${cmd}`);
  void serveCommands().catch(() => undefined);
  void (async () => {
    for await (const _ of xpub); // subscriptions from the edge: XPUB needs them read
  })().catch(() => undefined);
  node = await serveEdgeOnly({ http: port, subscriber: sub, publisher: pub, command: cmd });
  url = `ws://127.0.0.1:${port}/ws`;
});

after(async () => {
  for (const c of clients) c.close();
  for (const c of mpClients) c.close();
  await node?.stop();
  await single?.stop();
  xpub?.close();
  router?.close();
});

async function subscribed(channel: string, at: number): Promise<TestClient> {
  positions.set(channel, at);
  const c = await TestClient.connect(url, `u-${channel}`);
  clients.push(c);
  const r = await c.call('subscribe', { channel });
  assert.equal(r.offset, at);
  return c;
}

const push = (channel: string, offset: number): Buffer => Buffer.from(JSON.stringify({ type: 'message', channel, offset, epoch: EPOCH, sender: null, time: 0, data: { n: offset } }));

function sendBatch(channel: string, offsets: number[], epoch = EPOCH): Promise<void> {
  const body = encodeMessageBatch(offsets, offsets.map((o) => push(channel, o)));
  return xpub.send([channelTopic(channel), encodeHeader(DownKind.MessageBatch, offsets[0]!, epoch), body]);
}

test('a batch of consecutive offsets is delivered in order; a repeated prefix is skipped', async () => {
  const c = await subscribed('rooms-ok', 10);
  await sendBatch('rooms-ok', [11, 12, 13]);
  await sendBatch('rooms-ok', [12, 13, 14, 15]); // 12 and 13 seen already
  await c.waitFor(() => c.messages('rooms-ok').length >= 5, 5000, 'five messages');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(c.messages('rooms-ok').map((m) => m.offset), [11, 12, 13, 14, 15]);
  assert.equal(c.closeCode, null);
});

test('a batch reaches JSON and MessagePack subscribers alike, each in its own format', async () => {
  const json = await subscribed('rooms-formats', 20);
  const mp = await MsgpackClient.connect(url, 'u-rooms-formats-mp');
  mpClients.push(mp);
  const r = await mp.request('subscribe', { channel: 'rooms-formats' });
  assert.equal(r.result?.offset, 20);
  await sendBatch('rooms-formats', [21, 22, 23]);
  await json.waitFor(() => json.messages('rooms-formats').length >= 3, 5000, 'three messages (JSON)');
  const deadline = Date.now() + 5000;
  while (mp.pushes.length < 3 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(json.messages('rooms-formats').map((m) => m.offset), [21, 22, 23]);
  assert.deepEqual(mp.pushes.map((m) => [m.type, m.offset, (m.data as { n: number }).n]), [['message', 21, 21], ['message', 22, 22], ['message', 23, 23]], 'decoded as MessagePack values');
  assert.equal(mp.closeCode, null);
});

test('a batch that arrives while a client recovers waits behind the recovered messages: every offset once, in order', async () => {
  const channel = 'rooms-recover';
  positions.set(channel, 15);
  // History holds 11..15; the live batch 16..18 reaches the edge while the client's replay is being read.
  histories.set(channel, { offsets: [11, 12, 13, 14, 15], live: [16, 17, 18] });
  const c = await TestClient.connect(url, 'u-rooms-recover');
  clients.push(c);
  const r = await c.call('subscribe', { channel, recover: { offset: 10, epoch: EPOCH } });
  assert.equal(r.recovered, true);
  await c.waitFor(() => c.messages(channel).length >= 8, 5000, 'eight messages');
  await new Promise((res) => setTimeout(res, 100));
  assert.deepEqual(c.messages(channel).map((m) => m.offset), [11, 12, 13, 14, 15, 16, 17, 18]);
  assert.equal(c.closeCode, null);
});

test('a hole inside a batch closes the subscriber with 4006 after what came before it', async () => {
  const c = await subscribed('rooms-gap', 0);
  await sendBatch('rooms-gap', [1, 2, 4, 5]); // 3 is missing: the batch's first offset follows on
  await c.waitClosed(5000);
  assert.equal(c.closeCode, 4006);
  assert.deepEqual(c.messages('rooms-gap').map((m) => m.offset), [1, 2], 'nothing after the hole is delivered as if it followed');
});

test('a batch that starts past the next offset closes the subscriber with 4006, nothing of it delivered', async () => {
  const c = await subscribed('rooms-gap-start', 1);
  await sendBatch('rooms-gap-start', [3, 4, 5]); // 2 is missing: the batch is consecutive but does not follow on
  await c.waitClosed(5000);
  assert.equal(c.closeCode, 4006);
  assert.equal(c.messages('rooms-gap-start').length, 0);
});

test(`a batch of more entries than a sender makes (${MAX_BATCH_ENTRIES}) is delivered whole, in order`, async () => {
  const c = await subscribed('rooms-wide', 0);
  const n = MAX_BATCH_ENTRIES + 100;
  await sendBatch('rooms-wide', Array.from({ length: n }, (_, i) => i + 1));
  await c.waitFor(() => c.messages('rooms-wide').length >= n, 10000, `${n} messages`);
  const offsets = c.messages('rooms-wide').map((m) => m.offset);
  assert.equal(offsets.length, n);
  assert.ok(offsets.every((o, i) => o === i + 1), 'every offset once, in order');
  assert.equal(c.closeCode, null);
});

test('a batch of another epoch closes the subscriber with 4008 (unavailable: the director restarted)', async () => {
  const c = await subscribed('rooms-epoch', 3);
  await sendBatch('rooms-epoch', [4, 5], 'otherEpoch');
  await c.waitClosed(5000);
  assert.equal(c.closeCode, 4008, 'an epoch change says the director restarted');
  assert.equal(c.messages('rooms-epoch').length, 0);
});

test('a malformed batch is dropped whole and harms no one; the stream goes on', async () => {
  const c = await subscribed('rooms-bad', 0);
  const good = encodeMessageBatch([1, 2], [push('rooms-bad', 1), push('rooms-bad', 2)]);
  await xpub.send([channelTopic('rooms-bad'), encodeHeader(DownKind.MessageBatch, 1, EPOCH), good.subarray(0, good.length - 3)]);
  await sendBatch('rooms-bad', [1, 2]);
  await c.waitFor(() => c.messages('rooms-bad').length >= 2, 5000, 'the good batch');
  assert.deepEqual(c.messages('rooms-bad').map((m) => m.offset), [1, 2]);
  assert.equal(c.closeCode, null);
});

test('a publish batch wider than the director\'s send queue is sequenced whole: every publish waits for room', async () => {
  single = await startSingleNode({ TIDINGS_ZMQ_HIGH_WATER_MARK: '1000' });
  const n = 3000; // channels, one message each: 3 000 batches pending at the director against a queue of 1 000
  const reader = await TestClient.connect(single.url, 'wide-reader');
  clients.push(reader);
  for (const i of [0, 1500, n - 1]) await reader.call('subscribe', { channel: `wide-${i}` });
  const before = await metric(single.http, 'tidings_director_published_total', { target: 'channel' });
  const pub = new Publisher({ address: single.publisher });
  pub.start();
  after(() => pub.close());
  // One turn: the Publisher sends these as publish batches (of at most MAX_BATCH_BYTES each).
  await Promise.all(Array.from({ length: n }, (_, i) => pub.publish(`wide-${i}`, { i })));
  await pub.flush();
  await reader.waitFor(() => reader.pushes.filter((p) => p.type === 'message').length === 3, 10000, 'the three watched channels');
  const deadline = Date.now() + 10000;
  let published = 0;
  while (Date.now() < deadline && (published = (await metric(single.http, 'tidings_director_published_total', { target: 'channel' })) - before) < n) await new Promise((r) => setTimeout(r, 50));
  assert.equal(published, n, 'every publish of the batch sequenced');
  assert.equal(await metric(single.http, 'tidings_director_rejected_total'), 0, 'none refused for a full queue');
});
