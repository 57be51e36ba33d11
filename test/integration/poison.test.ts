/**
 * One message must never stop delivery. On every publish path a message
 * nested 99 levels deep (MessagePack encoders stop at 100) is refused at the
 * door with 126 payload_too_deep where the path can answer (counted where it
 * cannot: ZeroMQ PUB), and the normal message sent right after it reaches
 * every kind of subscriber: native JSON, native MessagePack and channelstream
 * `/ws?conn_id=`. Afterwards history and recovery read back over MessagePack,
 * the node is ready and no loop counted a failure.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Dealer, XPublisher } from 'zeromq';
import { startSingleNode, type SingleNode } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { MsgpackClient } from '../helpers/msgpack-client.js';
import { CsClient, csRequest } from '../helpers/channelstream.js';
import { metric, postJson } from '../helpers/http.js';
import { sign } from '../../src/compat/signer.js';
import { CloseCodes, ErrorCodes, type TidingsError } from '../../src/protocol/errors.js';
import { Publisher } from '../../src/publisher/publisher.js';
import { PUBLISH_MARKER } from '../../src/cluster/wire.js';
import { PUBLISH_BATCH_METHOD, PUBLISH_TEXT_METHOD, PublishEntryWriter, eachPublishOutcome, encodePublishBatch, encodePublishEntry } from '../../src/cluster/batch.js';
import { encode } from '@msgpack/msgpack';

const pack = (v: unknown): Uint8Array => encode(v);

const SECRET = 'poison-test-channelstream-secret';
const CHANNEL = 'poison';
const NO_HISTORY = 'poison-no-history';
const USER = 'target';
const TOO_DEEP = ErrorCodes.PAYLOAD_TOO_DEEP.code;

let node: SingleNode;
let json: TestClient;
let packed: MsgpackClient;
let cs: CsClient;
let publisher: TestClient;
let packedPublisher: MsgpackClient;
let zmqPub: XPublisher;
let dealer: Dealer;

/** A value nested `depth` levels of arrays and objects deep, carrying `marker`. */
function deep(depth: number, marker = 'hostile'): unknown {
  let v: unknown = { marker };
  for (let i = 1; i < depth; i++) v = [v];
  return v;
}

const csPost = (path: string, body: unknown, method = 'POST') =>
  csRequest(node.http, path, body, { secret: SECRET, method, signed: sign(path, SECRET, Math.floor(Date.now() / 1000)) });

before(async () => {
  node = await startSingleNode({ TIDINGS_SECRET: SECRET });
  json = await TestClient.connect(node.url, USER);
  await json.call('subscribe', { channel: CHANNEL });
  packed = await MsgpackClient.connect(node.url, USER);
  await packed.call('subscribe', { channel: CHANNEL });
  // channelstream's channel defaults keep no history; this channel keeps it, for the read-back at the end.
  const reg = await csPost('/connect', { username: USER, channels: [CHANNEL], channel_configs: { [CHANNEL]: { store_history: true, history_size: 100 } } });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  cs = await CsClient.open(node.url, reg.body.conn_id);
  // channelstream has no "subscribed" signal: publish until the connection receives.
  for (let i = 0; i < 40 && !cs.items.some((m) => m.message?.warm === true); i++) {
    await postJson(`${node.http}/api/publish`, { channel: CHANNEL, data: { warm: true } });
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(cs.items.some((m) => m.message?.warm === true), 'channelstream connection is live');
  publisher = await TestClient.connect(node.url, 'publisher');
  packedPublisher = await MsgpackClient.connect(node.url, 'packed-publisher');
  zmqPub = new XPublisher({ noDrop: true });
  zmqPub.connect(node.publisher);
  // The director's XSUB subscribes to everything: once that reaches us, nothing sent is lost.
  const [sub] = await zmqPub.receive();
  assert.equal(sub![0], 1);
  dealer = new Dealer();
  dealer.connect(node.command);
});

after(async () => {
  for (const c of [json, packed, cs, publisher, packedPublisher]) c?.close();
  zmqPub?.close();
  dealer?.close();
  await node?.stop();
});

/** 126 refusals the director counted at its command door: only what no edge door stopped gets there. */
const commandDoor = () => metric(node.http, 'tidings_director_rejected_total', { code: String(TOO_DEEP), door: 'command' });

/** Resolves when every subscriber kind has a push carrying `marker`. */
async function arrivesEverywhere(marker: string): Promise<void> {
  const has = (x: unknown): boolean => JSON.stringify(x).includes(`"${marker}"`);
  await json.waitFor(() => json.pushes.some(has), 5000, `${marker} on the JSON client`);
  await packed.waitFor(() => packed.pushes.some(has), 5000, `${marker} on the MessagePack client`);
  await cs.waitFor(() => cs.items.some(has), 5000, `${marker} on the channelstream client`);
}

function assertTooDeep(r: { status: number; body: any }, what: string): void {
  assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body).slice(0, 300)}`);
  assert.equal(r.body.code ?? r.body.error?.code, TOO_DEEP, what);
}

async function command(method: string, body: unknown): Promise<{ status: string; body: any }> {
  const id = Buffer.alloc(4);
  id.writeUInt32BE(Math.floor(Math.random() * 1e9));
  await dealer.send([id, method, typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body)]);
  for (;;) {
    const [rid, status, reply] = await dealer.receive();
    if (rid!.equals(id)) return { status: status!.toString(), body: JSON.parse(reply!.toString()) };
  }
}

test('native websocket publish, JSON and MessagePack: refused with 126, the next message arrives everywhere', async () => {
  const before = await commandDoor();
  const r1 = await publisher.request('publish', { channel: CHANNEL, data: deep(99) });
  assert.equal(r1.error?.code, TOO_DEEP, JSON.stringify(r1));
  assert.equal((await publisher.request('publish', { channel: CHANNEL, data: deep(33) })).error?.code, TOO_DEEP, '33 levels');
  assert.ok((await publisher.request('publish', { channel: CHANNEL, data: deep(32, 'ws-limit') })).result, '32 levels pass');
  await arrivesEverywhere('ws-limit');
  // 20 000 levels in one 40 KB frame: refused at the door, not a failure further on (100 internal).
  const id = 9000;
  const frame = `{"id":${id},"method":"publish","params":{"channel":"${CHANNEL}","data":${'['.repeat(20000)}${']'.repeat(20000)}}}`;
  const reply = new Promise<any>((resolve) => {
    const onMessage = (d: Buffer): void => {
      for (const line of d.toString().split('\n')) if (line.includes(`"id":${id}`)) (publisher.ws.off('message', onMessage), resolve(JSON.parse(line)));
    };
    publisher.ws.on('message', onMessage);
  });
  publisher.ws.send(frame);
  assert.equal((await reply).error?.code, TOO_DEEP);
  await publisher.call('publish', { channel: CHANNEL, data: { n: 'after-ws-json' } });
  await arrivesEverywhere('after-ws-json');

  const r2 = await packedPublisher.request('publish', { channel: CHANNEL, data: deep(99) });
  assert.equal(r2.error?.code, TOO_DEEP, JSON.stringify(r2));
  // 20 000 levels of MessagePack (one byte each), built by hand: the encoder would overflow its own stack.
  const r3 = await packedPublisher.requestRaw((id) =>
    Buffer.concat([Buffer.from([0x83]), pack('id'), pack(id), pack('method'), pack('publish'), pack('params'), Buffer.from([0x82]), pack('channel'), pack(CHANNEL), pack('data'), Buffer.alloc(20000, 0x91), Buffer.from([0xc0])]),
  );
  assert.equal(r3.error?.code, TOO_DEEP);
  await packedPublisher.call('publish', { channel: CHANNEL, data: { n: 'after-ws-msgpack' } });
  await arrivesEverywhere('after-ws-msgpack');
  // A message to a user comes from the HTTP and ZeroMQ paths; a client publishes to channels only.
  assert.equal(await commandDoor(), before, 'refused at the edge: checked once, at the first door');
});

test('HTTP: /api/publish (channel and users) and the Seth-Pusher routes refuse with 400 / 126', async () => {
  const before = await commandDoor();
  assertTooDeep(await postJson(`${node.http}/api/publish`, { channel: CHANNEL, data: deep(99) }), '/api/publish channel');
  // One level past the limit: the body (34 levels) passes the body reader, the payload (33) does not.
  assertTooDeep(await postJson(`${node.http}/api/publish`, { channel: CHANNEL, data: deep(33) }), '/api/publish channel, 33 levels');
  assert.equal((await postJson(`${node.http}/api/publish`, { channel: CHANNEL, data: deep(32, 'api-limit') })).status, 200, '32 levels pass');
  await arrivesEverywhere('api-limit');
  await postJson(`${node.http}/api/publish`, { channel: CHANNEL, data: { n: 'after-api-channel' } });
  await arrivesEverywhere('after-api-channel');

  assertTooDeep(await postJson(`${node.http}/api/publish`, { users: [USER], data: deep(99) }), '/api/publish users');
  assertTooDeep(await postJson(`${node.http}/api/publish`, { users: [USER], data: deep(33) }), '/api/publish users, 33 levels');
  await postJson(`${node.http}/api/publish`, { users: [USER], data: { n: 'after-api-user' } });
  await arrivesEverywhere('after-api-user');

  assertTooDeep(await postJson(`${node.http}/api/channels/${CHANNEL}/`, deep(99)), 'Seth-Pusher channel');
  assertTooDeep(await postJson(`${node.http}/api/channels/${CHANNEL}/`, deep(33)), 'Seth-Pusher channel, 33 levels');
  await postJson(`${node.http}/api/channels/${CHANNEL}/`, { n: 'after-seth-channel' });
  await arrivesEverywhere('after-seth-channel');

  assertTooDeep(await postJson(`${node.http}/api/users/${USER}/`, deep(99)), 'Seth-Pusher user');
  assertTooDeep(await postJson(`${node.http}/api/users/${USER}/`, deep(33)), 'Seth-Pusher user, 33 levels');
  await postJson(`${node.http}/api/users/${USER}/`, { n: 'after-seth-user' });
  await arrivesEverywhere('after-seth-user');
  assert.equal(await commandDoor(), before, 'refused at the edge');
});

test('channelstream /message (channel, pm_users, PATCH) refuses with 400 / 126', async () => {
  const before = await commandDoor();
  assertTooDeep(await csPost('/message', [{ channel: CHANNEL, user: 'app', message: deep(99) }]), 'POST /message channel');
  // The item is the payload: an item of 33 levels (its message 32) in a body of 34.
  assertTooDeep(await csPost('/message', [{ channel: CHANNEL, user: 'app', message: deep(32) }]), 'POST /message channel, 33 levels');
  assert.equal((await csPost('/message', [{ channel: CHANNEL, user: 'app', message: { n: 'after-cs-channel' } }])).status, 200);
  await arrivesEverywhere('after-cs-channel');

  assertTooDeep(await csPost('/message', [{ pm_users: [USER], user: 'app', message: deep(99) }]), 'POST /message pm_users');
  assertTooDeep(await csPost('/message', [{ pm_users: [USER], user: 'app', message: deep(32) }]), 'POST /message pm_users, 33 levels');
  assert.equal((await csPost('/message', [{ pm_users: [USER], user: 'app', message: { n: 'after-cs-pm' } }])).status, 200);
  await arrivesEverywhere('after-cs-pm');

  const posted = await csPost('/message', [{ channel: CHANNEL, user: 'app', message: { n: 'to-edit' } }]);
  await arrivesEverywhere('to-edit');
  assertTooDeep(await csPost('/message', [{ uuid: posted.body[0].uuid, channel: CHANNEL, message: deep(99) }], 'PATCH'), 'PATCH /message');
  assertTooDeep(await csPost('/message', [{ uuid: posted.body[0].uuid, channel: CHANNEL, message: deep(32) }], 'PATCH'), 'PATCH /message, 33 levels');
  assert.equal((await csPost('/message', [{ uuid: posted.body[0].uuid, channel: CHANNEL, message: { n: 'after-cs-edit' } }], 'PATCH')).status, 200);
  await arrivesEverywhere('after-cs-edit');
  assert.equal(await commandDoor(), before, 'refused at the edge');
});

test('ZeroMQ publisher address (native multipart, to a channel and a user, and omnibus single frame): refused and counted', async () => {
  const rejected = () => metric(node.http, 'tidings_director_rejected_total', { code: String(TOO_DEEP), door: 'publisher' });
  const before = await rejected();
  await zmqPub.send([PUBLISH_MARKER, 'channel', CHANNEL, JSON.stringify(deep(99))]);
  await zmqPub.send([PUBLISH_MARKER, 'channel', CHANNEL, JSON.stringify({ n: 'after-zmq-channel' })]);
  await arrivesEverywhere('after-zmq-channel');
  await zmqPub.send([PUBLISH_MARKER, 'user', USER, JSON.stringify(deep(99))]);
  await zmqPub.send([PUBLISH_MARKER, 'user', USER, JSON.stringify({ n: 'after-zmq-user' })]);
  await arrivesEverywhere('after-zmq-user');
  await zmqPub.send(`${CHANNEL}:${JSON.stringify({ type: 'x', sender: 'worker', payload: deep(99) })}`);
  await zmqPub.send(`${CHANNEL}:${JSON.stringify({ type: 'x', sender: 'worker', payload: { n: 'after-omnibus' } })}`);
  await arrivesEverywhere('after-omnibus');
  assert.equal((await rejected()) - before, 3, 'three refusals counted with code 126');
  await node.proc.waitFor(/"code":126.*rejected a message on the publisher address/, 5000);
});

test('ZeroMQ publisher address: data that is not JSON is refused with invalid_json and counted; what follows arrives', async () => {
  const notJson = () => metric(node.http, 'tidings_director_rejected_total', { code: String(ErrorCodes.INVALID_JSON.code), door: 'publisher' });
  const before = await notJson();
  // What a parse refuses, checked without parsing (scanJsonText): cut short, a trailing comma, a bad escape, NaN, two values.
  const texts = ['{"n":', '[1,]', '"\\x"', 'NaN', '{"n":1} {"n":2}'];
  for (const t of texts) await zmqPub.send([PUBLISH_MARKER, 'channel', CHANNEL, t]);
  await zmqPub.send([PUBLISH_MARKER, 'channel', CHANNEL, JSON.stringify({ n: 'after-not-json' })]);
  await arrivesEverywhere('after-not-json');
  assert.equal((await notJson()) - before, texts.length, 'each refusal counted with invalid_json');
});

test('ZeroMQ publisher address, batched: an entry over max_message_size is refused with payload_too_large and counted; the rest of its batch arrives', async () => {
  const tooLarge = () => metric(node.http, 'tidings_director_rejected_total', { code: String(ErrorCodes.PAYLOAD_TOO_LARGE.code), door: 'publisher' });
  const before = await tooLarge();
  // 70 000 bytes of data: past the default max_message_size (65 536), within what the link takes (twice that).
  const big = JSON.stringify({ n: 'x'.repeat(70_000) });
  const after = JSON.stringify({ n: 'after-too-large' });
  await zmqPub.send(encodePublishBatch([
    { target: 'channel', name: CHANNEL, data: big, sender: null, noHistory: false },
    { target: 'channel', name: CHANNEL, data: after, sender: null, noHistory: false },
  ]));
  await arrivesEverywhere('after-too-large');
  assert.equal((await tooLarge()) - before, 1, 'the large entry refused and counted');
  assert.ok(!json.pushes.some((m) => JSON.stringify(m).length > 65_536), 'the large entry reached no one');
});

test('ZeroMQ publisher address, batched: data checked as bytes; not JSON, too deep and a bad channel name refused and counted, bytes that are not UTF-8 arrive as the text path reads them, raw line breaks blanked', async () => {
  const counted = (code: number) => metric(node.http, 'tidings_director_rejected_total', { code: String(code), door: 'publisher' });
  const [notJson0, deep0, badName0] = [await counted(ErrorCodes.INVALID_JSON.code), await counted(TOO_DEEP), await counted(ErrorCodes.INVALID_CHANNEL.code)];
  const entry = (data: Buffer | string, sender: string | null = null, name = CHANNEL): Buffer => {
    const [n, s, d] = [Buffer.from(name), sender === null ? Buffer.alloc(0) : Buffer.from(sender), Buffer.from(data)];
    const head = Buffer.alloc(10);
    head[0] = 0x63;
    head[1] = sender === null ? 0 : 2;
    head.writeUInt16BE(n.length, 2);
    head.writeUInt16BE(s.length, 4);
    head.writeUInt32BE(d.length, 6);
    return Buffer.concat([head, n, s, d]);
  };
  // Inside a string: a byte never in UTF-8, a surrogate half, a sequence cut short. JSON once decoded (U+FFFD), so it is published.
  const notUtf8 = Buffer.concat([Buffer.from('{"n":"bytes-not-utf8","s":"a'), Buffer.from([0xff, 0xed, 0xa0, 0x80, 0xe2, 0x82]), Buffer.from('z"}')]);
  const entries = [
    entry('{"n":"bytes-lines",\r\n "s":"é😀"}\n', 'wörker'),
    entry('{"n":1,}'),
    entry(JSON.stringify(deep(33))),
    entry(notUtf8, 'wörker'),
    entry('[1'),
    entry('{"n":"bytes-bad-name"}', null, 'has space'),
    entry(' {"n":"bytes-after"} '),
  ];
  await zmqPub.send(['tidings/1+batch', Buffer.concat(entries)]);
  await arrivesEverywhere('bytes-after');
  const got = json.pushes.filter((m: any) => m.type === 'message' && typeof m.data?.n === 'string' && m.data.n.startsWith('bytes-'));
  assert.deepEqual(got.map((m: any) => m.data), [
    { n: 'bytes-lines', s: 'é😀' },
    { n: 'bytes-not-utf8', s: JSON.parse(notUtf8.toString('utf8')).s },
    { n: 'bytes-after' },
  ]);
  assert.match((got[1] as any).data.s, /^a\uFFFD+z$/);
  assert.deepEqual(got.map((m: any) => m.sender), ['wörker', 'wörker', null]);
  assert.deepEqual(got.map((m: any) => m.offset - (got[0] as any).offset), [0, 1, 2], 'refused entries take no offset');
  assert.equal((await counted(ErrorCodes.INVALID_JSON.code)) - notJson0, 2, 'not JSON: counted with invalid_json');
  assert.equal((await counted(TOO_DEEP)) - deep0, 1, 'too deep: counted with payload_too_deep');
  assert.equal((await counted(ErrorCodes.INVALID_CHANNEL.code)) - badName0, 1, 'a channel name that breaks the rules: counted with invalid_channel');
  // History holds the same pushes the subscribers got.
  const h = (await json.call('history', { channel: CHANNEL, since: { offset: (got[0] as any).offset - 1, epoch: (got[0] as any).epoch }, limit: 3 })) as any;
  assert.deepEqual(h.messages.map((m: any) => m.data), got.map((m: any) => m.data));
});

test('command address, publish_text (an edge\'s publish): a channel name that breaks the rules is refused after valid ones', async () => {
  const entry = (name: string) => encodePublishEntry({ target: 'channel', name, data: '{"n":"text"}', sender: null, noHistory: false });
  const good = await command(PUBLISH_TEXT_METHOD, entry(CHANNEL));
  assert.equal(good.status, 'ok', JSON.stringify(good.body));
  const bad = await command(PUBLISH_TEXT_METHOD, entry('has space'));
  assert.equal(bad.status, 'error');
  assert.equal(bad.body.code, ErrorCodes.INVALID_CHANNEL.code, JSON.stringify(bad.body));
});

test('command address, publish_batch (an edge\'s publishes of a turn): each entry answered on its own, refused ones counted and costing the others nothing', async () => {
  const counted = (code: number) => metric(node.http, 'tidings_director_rejected_total', { code: String(code), door: 'command' });
  const [deep0, name0, field0] = [await counted(TOO_DEEP), await counted(ErrorCodes.INVALID_CHANNEL.code), await counted(ErrorCodes.MISSING_FIELD.code)];
  const w = new PublishEntryWriter();
  w.addText(CHANNEL, 'batcher', false, '{"n":"pb-1"}');
  w.addText('has space', 'batcher', false, '{"n":"pb-x"}');
  w.addBytes(CHANNEL, 'batcher', false, Buffer.from(JSON.stringify(deep(33))), 0, Buffer.byteLength(JSON.stringify(deep(33))));
  w.addText(NO_HISTORY, 'batcher', true, '{"n":"pb-nh"}'); // kept out of history (another channel: the last test recovers this one whole)
  w.addText(CHANNEL, 'batcher', false, '{"n":"pb-2"}');
  const body = Buffer.concat([w.take(), encodePublishEntry({ target: 'user', name: USER, data: '{"n":"pb-u"}', sender: null, noHistory: false }), encodePublishEntry({ target: 'channel', name: CHANNEL, data: '{"n":"pb-3"}', sender: null, noHistory: false })]);
  const id = Buffer.alloc(4);
  id.writeUInt32BE(777);
  await dealer.send([id, PUBLISH_BATCH_METHOD, body]);
  let reply: Buffer[];
  do reply = (await dealer.receive()) as Buffer[];
  while (!reply[0]!.equals(id));
  assert.equal(reply[1]!.toString(), 'ok');
  const out: Array<{ ok: boolean; v: any }> = [];
  assert.ok(eachPublishOutcome(reply[2]!, 7, (_i, ok, start, end) => out.push({ ok, v: JSON.parse(reply[2]!.toString('utf8', start, end)) })), 'one outcome per entry');
  assert.deepEqual(out.map((o) => (o.ok ? 'ok' : o.v.code)), ['ok', ErrorCodes.INVALID_CHANNEL.code, TOO_DEEP, 'ok', 'ok', ErrorCodes.MISSING_FIELD.code, 'ok']);
  const offsets = [0, 4, 6].map((i) => out[i]!.v.offset as number);
  assert.deepEqual(offsets.map((o) => o - offsets[0]!), [0, 1, 2], 'refused entries take no offset');
  assert.ok([0, 4, 6].every((i) => out[i]!.v.epoch === out[0]!.v.epoch), 'one epoch');
  assert.ok(out.filter((o) => o.ok).every((o) => Object.keys(o.v).join() === 'offset,epoch'), 'what publish_text answers');
  await arrivesEverywhere('pb-3');
  const got = json.messages(CHANNEL).filter((m) => String((m.data as any)?.n).startsWith('pb-'));
  assert.deepEqual(got.map((m) => [(m.data as any).n, m.offset, m.sender]), [['pb-1', offsets[0], 'batcher'], ['pb-2', offsets[1], 'batcher'], ['pb-3', offsets[2], null]]);
  assert.equal((await counted(TOO_DEEP)) - deep0, 1);
  assert.equal((await counted(ErrorCodes.INVALID_CHANNEL.code)) - name0, 1);
  assert.equal((await counted(ErrorCodes.MISSING_FIELD.code)) - field0, 1);
  const h = (await json.call('history', { channel: CHANNEL, since: { offset: offsets[0]! - 1, epoch: got[0]!.epoch }, limit: 10 })) as any;
  assert.deepEqual(h.messages.map((m: any) => m.data.n), ['pb-1', 'pb-2', 'pb-3']);
  // no_history: sequenced (an offset), not kept.
  const nh = (await json.call('history', { channel: NO_HISTORY, limit: 10 })) as any;
  assert.equal(nh.offset, out[3]!.v.offset);
  assert.deepEqual(nh.messages, []);
  // A body that does not add up is refused whole.
  const bad = await command(PUBLISH_BATCH_METHOD, body.subarray(0, body.length - 1));
  assert.equal(bad.status, 'error');
  assert.equal(bad.body.code, ErrorCodes.BAD_REQUEST.code);
});

test('native websocket publish, several per frame: read in place or parsed, each answered under its own id, refusals cost the others nothing, data arrives as sent; a frame with a malformed line runs none of it', async () => {
  const replies = new Map<number, any>();
  const onMessage = (data: Buffer): void => {
    for (const line of data.toString('utf8').split('\n')) {
      const m = line ? JSON.parse(line) : null;
      if (m && typeof m.id === 'number' && m.id >= 5000) replies.set(m.id, m);
    }
  };
  publisher.ws.on('message', onMessage);
  try {
    const lines = [
      `{"id":5001,"method":"publish","params":{"channel":"${CHANNEL}","data":{"n":"ws-1","s":"é\\u00e9 \\"q\\""}}}`,
      '{"id":5002,"method":"publish","params":{"channel":"has space","data":1}}',
      `{"id":5003,"method":"publish","params":{"channel":"${CHANNEL}","data":${JSON.stringify(deep(33))}}}`,
      `{ "id": 5004, "method": "publish", "params": { "channel": "${CHANNEL}", "data": {"n": "ws-2"} } }`,
      `{"params":{"no_history":true,"data":[1,{"n":"ws-nh"}],"channel":"${NO_HISTORY}"},"method":"publish","id":5005}`,
      `{"id":5006,"method":"publish","params":{"channel":"${CHANNEL}","data":{"n":"ws-4"}}}`,
    ];
    publisher.ws.send(lines.join('\n'));
    await publisher.waitFor(() => replies.size === 6, 5000, 'six replies');
    assert.equal(replies.get(5002).error.code, ErrorCodes.INVALID_CHANNEL.code);
    assert.equal(replies.get(5003).error.code, TOO_DEEP);
    const offsets = [5001, 5004, 5006].map((i) => replies.get(i).result.offset as number);
    assert.deepEqual(offsets.map((o) => o - offsets[0]!), [0, 1, 2], 'in the order sent, one offset each');
    await json.waitFor(() => json.messages(CHANNEL).some((m) => (m.data as any)?.n === 'ws-4'), 5000, 'ws-4');
    const got = json.messages(CHANNEL).filter((m) => m.offset! >= offsets[0]! && m.offset! <= offsets[2]!);
    assert.deepEqual(got.map((m) => m.data), [{ n: 'ws-1', s: 'éé "q"' }, { n: 'ws-2' }, { n: 'ws-4' }]);
    assert.ok(got.every((m) => m.sender === 'publisher'), 'the sender is the token\'s user');
    const h = (await json.call('history', { channel: CHANNEL, since: { offset: offsets[0]! - 1, epoch: got[0]!.epoch }, limit: 10 })) as any;
    assert.deepEqual(h.messages.map((m: any) => m.offset), offsets);
    const nh = (await json.call('history', { channel: NO_HISTORY, limit: 10 })) as any;
    assert.equal(nh.offset, replies.get(5005).result.offset, 'no_history: sequenced, not kept');
    assert.deepEqual(nh.messages, []);
  } finally {
    publisher.ws.off('message', onMessage);
  }
  // A frame whose last line is not JSON: closed with 4000 (bad request) before any of its publishes runs.
  const rogue = await TestClient.connect(node.url, 'rogue');
  rogue.ws.send(`{"id":1,"method":"publish","params":{"channel":"${CHANNEL}","data":{"n":"never"}}}\n{"id":2,`);
  await rogue.waitClosed(5000);
  assert.equal(rogue.closeCode, CloseCodes.BAD_REQUEST.code);
  await publisher.call('publish', { channel: CHANNEL, data: { n: 'after-rogue' } });
  await json.waitFor(() => json.messages(CHANNEL).some((m) => (m.data as any)?.n === 'after-rogue'), 5000, 'after-rogue');
  assert.ok(!json.messages(CHANNEL).some((m) => (m.data as any)?.n === 'never'), 'nothing of the malformed frame ran');
});

test('command address (acknowledged publish, as Publisher.publishAcked and any backend send it): error 126', async () => {
  const before = await commandDoor();
  const bad = await command('publish', { channel: CHANNEL, data: deep(99) });
  assert.equal(bad.status, 'error');
  assert.equal(bad.body.code, TOO_DEEP);
  const worse = await command('publish', `{"channel":"${CHANNEL}","data":${'['.repeat(5000)}${']'.repeat(5000)}}`);
  assert.equal(worse.body.code, TOO_DEEP, 'a body deeper than any command carries is refused before parsing');
  // The limit, exactly: 32 levels pass, 33 do not (a command body may nest 34: the payload and its envelope).
  assert.equal((await command('publish', { channel: CHANNEL, data: deep(32, 'limit') })).status, 'ok');
  await arrivesEverywhere('limit');
  assert.equal((await command('publish', { channel: CHANNEL, data: deep(33) })).body.code, TOO_DEEP);
  // Every command body is held to 34 levels, not only publishes: user state is pushed to subscribers too.
  assert.equal((await command('user_state', { user: USER, user_state: { a: deep(40) } })).body.code, TOO_DEEP);
  const cs = await command('cs_message', { op: 'post', messages: [{ channel: CHANNEL, user: 'app', message: deep(99) }] });
  assert.equal(cs.body.code, TOO_DEEP, 'channelstream messages sent straight to the command address');
  const ok = await command('publish', { channel: CHANNEL, data: { n: 'after-command' } });
  assert.equal(ok.status, 'ok');
  assert.equal(typeof ok.body.offset, 'number');
  await arrivesEverywhere('after-command');
  assert.equal((await commandDoor()) - before, 4, 'the director is the door of the command address');
  // The TypeScript Publisher refuses before sending, on both of its paths.
  const p = new Publisher({ address: node.publisher, commandAddress: node.command });
  p.start();
  try {
    await assert.rejects(p.publish(CHANNEL, deep(99)), (e: TidingsError) => e.code === TOO_DEEP);
    await assert.rejects(p.publishToUser(USER, deep(99)), (e: TidingsError) => e.code === TOO_DEEP);
    await assert.rejects(p.publishAcked(CHANNEL, deep(99)), (e: TidingsError) => e.code === TOO_DEEP);
  } finally {
    await p.close();
  }
  assert.equal((await commandDoor()) - before, 4, 'nothing of it reached the director');
});

test('afterwards: MessagePack history and recovery read back, a new subscribe works, ready, no loop failure', async () => {
  const h = await packed.call('history', { channel: CHANNEL, limit: 100 });
  assert.ok(h.messages.length >= 8, `history holds the messages (${h.messages.length})`);
  assert.ok(h.messages.every((m: any) => !JSON.stringify(m).includes('hostile')), 'nothing hostile was stored');
  const late = await MsgpackClient.connect(node.url, 'late');
  const sub = await late.call('subscribe', { channel: CHANNEL, recover: { offset: h.messages[0].offset - 1, epoch: h.epoch } });
  assert.equal(sub.recovered, true);
  assert.equal(sub.replayed, sub.offset - h.messages[0].offset + 1);
  await late.waitFor(() => late.pushes.length === sub.replayed, 5000, 'the replay');
  late.close();
  const fresh = await TestClient.connect(node.url, 'fresh');
  assert.ok(await fresh.call('subscribe', { channel: 'another' }), 'a new subscribe is answered (no 113)');
  fresh.close();
  assert.equal((await fetch(`${node.http}/readyz`)).status, 200);
  assert.equal(await metric(node.http, 'tidings_loop_failures_total'), 0, 'every hostile message was stopped at a door');
  assert.doesNotMatch(node.proc.text(), /edge worker died|unhandled rejection/);
});
