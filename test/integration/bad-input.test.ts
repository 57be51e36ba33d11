/**
 * Every bad input gets its documented code and harms no one else: a bystander
 * subscriber keeps receiving, in order, throughout.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { Publisher as ZmqPub } from 'zeromq';
import { startSingleNode, TOKEN_SECRET, API_KEY, sleep, type SingleNode } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { metric, postJson } from '../helpers/http.js';
import { signToken } from '../../src/auth/sign.js';
import { CloseCodes, ErrorCodes } from '../../src/protocol/errors.js';

let node: SingleNode;
let bystander: TestClient;
let published = 0;

before(async () => {
  node = await startSingleNode({ TIDINGS_MAX_MESSAGE_SIZE: '4096', TIDINGS_CONNECT_TIMEOUT: '1', TIDINGS_MAX_SUBSCRIPTIONS: '3' });
  bystander = await TestClient.connect(node.url, 'bystander');
  await bystander.call('subscribe', { channel: 'steady' });
});

after(async () => {
  bystander?.close();
  await node?.stop();
});

async function publishSteady(): Promise<void> {
  const r = await postJson(`${node.http}/api/publish`, { channel: 'steady', data: { n: published } });
  assert.equal(r.status, 200);
  published++;
}

function rawOpen(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function closeOf(ws: WebSocket, timeoutMs = 5000): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('not closed')), timeoutMs);
    ws.once('close', (code, reason) => {
      clearTimeout(t);
      resolve({ code, reason: reason.toString() });
    });
  });
}

test('malformed frames close the connection with 4000 bad_request', async () => {
  for (const frame of ['{not json', '[1,2]', '"str"', '{"method":"ping"}', '{"id":-1,"method":"ping"}']) {
    const ws = await rawOpen(node.url);
    const closed = closeOf(ws);
    ws.send(frame);
    const c = await closed;
    assert.equal(c.code, CloseCodes.BAD_REQUEST.code, frame);
    assert.match(c.reason, /malformed frame/);
  }
  const ws = await rawOpen(node.url);
  const closed = closeOf(ws);
  ws.send(Buffer.from('{"id":1}'), { binary: true });
  assert.equal((await closed).code, CloseCodes.BAD_REQUEST.code, 'binary frame on a JSON connection');
  await publishSteady();
});

test('a frame over max_message_size closes with 1009', async () => {
  const ws = await rawOpen(node.url);
  const closed = closeOf(ws);
  ws.send(JSON.stringify({ id: 1, method: 'ping', params: { pad: 'x'.repeat(5000) } }));
  assert.equal((await closed).code, 1009);
  await publishSteady();
});

test('commands before connect, unknown methods and bad params get error replies', async () => {
  const c = await TestClient.open(node.url);
  assert.equal((await c.request('subscribe', { channel: 'steady' })).error?.code, ErrorCodes.UNAUTHORIZED.code);
  const token = await signToken({ secret: TOKEN_SECRET, user: 'mallory', ttl: 60, subscribe: ['own.*', 'a', 'b', 'c', 'd'], publish: ['own.*'] });
  assert.equal((await c.request('connect', { token })).result.user, 'mallory');
  assert.equal((await c.request('connect', { token })).error?.code, ErrorCodes.ALREADY_CONNECTED.code);
  assert.equal((await c.request('frobnicate')).error?.code, ErrorCodes.METHOD_NOT_FOUND.code);
  assert.equal((await c.request('subscribe', { channel: 'bad name' })).error?.code, ErrorCodes.INVALID_CHANNEL.code);
  assert.equal((await c.request('subscribe', { channel: 'x'.repeat(201) })).error?.code, ErrorCodes.INVALID_CHANNEL.code);
  assert.equal((await c.request('subscribe', {})).error?.code, ErrorCodes.INVALID_CHANNEL.code);
  assert.equal((await c.request('subscribe', { channel: 'steady' })).error?.code, ErrorCodes.PERMISSION_DENIED.code, 'not granted');
  assert.equal((await c.request('publish', { channel: 'steady', data: 1 })).error?.code, ErrorCodes.PERMISSION_DENIED.code, 'no publish grant');
  assert.equal((await c.request('publish', { channel: 'own.x' })).error?.code, ErrorCodes.MISSING_FIELD.code, 'data missing');
  assert.equal((await c.request('unsubscribe', { channel: 'own.x' })).error?.code, ErrorCodes.NOT_SUBSCRIBED.code);
  assert.ok((await c.request('subscribe', { channel: 'own.x' })).result);
  assert.equal((await c.request('subscribe', { channel: 'own.x' })).error?.code, ErrorCodes.ALREADY_SUBSCRIBED.code);
  assert.equal((await c.request('subscribe', { channel: 'own.y', recover: { offset: -1, epoch: 'e' } })).error?.code, ErrorCodes.INVALID_POSITION.code);
  assert.ok((await c.request('subscribe', { channel: 'a' })).result);
  assert.ok((await c.request('subscribe', { channel: 'b' })).result);
  assert.equal((await c.request('subscribe', { channel: 'c' })).error?.code, ErrorCodes.LIMIT_EXCEEDED.code, 'max_subscriptions is 3');
  assert.equal((await c.request('ping', [] as never)).error?.code, ErrorCodes.BAD_REQUEST.code, 'params must be an object');
  // The sender is the token's user, whatever the client claims.
  const pub = await c.call('publish', { channel: 'own.x', data: { hi: 1 }, sender: 'admin' });
  await c.waitFor(() => c.messages('own.x').length === 1);
  assert.equal(c.messages('own.x')[0]!.sender, 'mallory');
  assert.equal(c.messages('own.x')[0]!.offset, pub.offset);
  c.close();
  await publishSteady();
});

test('bad and expired tokens get an error reply then close 4001 / 4002', async () => {
  const bad = await TestClient.open(node.url);
  const r1 = await bad.request('connect', { token: 'garbage' });
  assert.equal(r1.error?.code, ErrorCodes.TOKEN_INVALID.code);
  await bad.waitClosed();
  assert.equal(bad.closeCode, CloseCodes.TOKEN_INVALID.code);

  const expiredToken = await new SignJWT({ grants: {} }).setProtectedHeader({ alg: 'HS256' }).setSubject('late').setExpirationTime(Math.floor(Date.now() / 1000) - 30).sign(new TextEncoder().encode(TOKEN_SECRET));
  const expired = await TestClient.open(node.url);
  assert.equal((await expired.request('connect', { token: expiredToken })).error?.code, ErrorCodes.TOKEN_EXPIRED.code);
  await expired.waitClosed();
  assert.equal(expired.closeCode, CloseCodes.TOKEN_EXPIRED.code);

  const anon = await TestClient.open(node.url);
  assert.equal((await anon.request('connect', {})).error?.code, ErrorCodes.TOKEN_INVALID.code, 'anonymous access is off');
  await anon.waitClosed();

  // A token that expires while connected closes the connection with 4002.
  const short = await TestClient.connect(node.url, 'brief', { subscribe: ['*'] }, 2);
  await short.waitClosed(8000);
  assert.equal(short.closeCode, CloseCodes.TOKEN_EXPIRED.code);
  await publishSteady();
});

test('a connection that never sends connect is closed with 4003', async () => {
  const ws = await rawOpen(node.url);
  const c = await closeOf(ws, 5000);
  assert.equal(c.code, CloseCodes.CONNECT_TIMEOUT.code);
});

test('HTTP API: each bad request gets its status and code', async () => {
  const api = `${node.http}/api/publish`;
  const cases: Array<[string, Promise<{ status: number; body: any }>, number, number]> = [
    ['malformed JSON', postJson(api, '{"channel":'), 400, ErrorCodes.INVALID_JSON.code],
    ['missing data', postJson(api, { channel: 'steady' }), 422, ErrorCodes.MISSING_FIELD.code],
    ['no target', postJson(api, { data: 1 }), 422, ErrorCodes.MISSING_FIELD.code],
    ['not an object', postJson(api, [1]), 422, ErrorCodes.MISSING_FIELD.code],
    ['bad channel', postJson(api, { channel: 'a b', data: 1 }), 400, ErrorCodes.INVALID_CHANNEL.code],
    ['bad user', postJson(api, { users: ['ok', ''], data: 1 }), 400, ErrorCodes.INVALID_USER.code],
    ['oversized', postJson(api, { channel: 'steady', data: 'x'.repeat(5000) }), 413, ErrorCodes.PAYLOAD_TOO_LARGE.code],
    ['wrong key', postJson(api, { channel: 'steady', data: 1 }, { authorization: 'Bearer nope' }), 401, ErrorCodes.BAD_API_KEY.code],
    ['no key', postJson(api, { channel: 'steady', data: 1 }, {}), 401, ErrorCodes.BAD_API_KEY.code],
    ['bad sender', postJson(api, { channel: 'steady', data: 1, sender: 5 }), 422, ErrorCodes.MISSING_FIELD.code],
    ['wrong content type', postJson(api, { channel: 'steady', data: 1 }, { authorization: `Bearer ${API_KEY}`, 'content-type': 'text/html' }), 415, ErrorCodes.UNSUPPORTED_MEDIA_TYPE.code],
  ];
  for (const [what, p, status, code] of cases) {
    const r = await p;
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, code, what);
    assert.equal(typeof r.body.error.message, 'string');
  }
  const get = await fetch(api, { headers: { 'x-api-key': API_KEY } });
  assert.equal(get.status, 405);
  assert.equal(((await get.json()) as any).error.code, ErrorCodes.METHOD_NOT_ALLOWED.code);
  const missing = await fetch(`${node.http}/nope`);
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as any).error.code, ErrorCodes.NOT_FOUND.code);
  // Seth-Pusher routes answer in Seth-Pusher's shape, with our code beside it.
  const seth = await postJson(`${node.http}/api/channels/steady/`, { a: 1 }, { authorization: 'Bearer wrong' });
  assert.equal(seth.status, 401);
  assert.deepEqual(seth.body, { status: 401, message: 'Invalid Auth credentials provided', code: ErrorCodes.BAD_API_KEY.code, name: 'bad_api_key' });
  const sethBad = await postJson(`${node.http}/api/channels/bad%20name/`, { a: 1 }, { 'x-api-key': API_KEY });
  assert.equal(sethBad.status, 400);
  assert.equal(sethBad.body.code, ErrorCodes.INVALID_CHANNEL.code);
  const sethOk = await postJson(`${node.http}/api/channels/steady/`, { n: published }, { 'x-api-key': API_KEY });
  assert.equal(sethOk.status, 200);
  assert.equal(sethOk.body.status, 200);
  published++;
});

test('bad ZeroMQ publishes are rejected, counted and logged; good ones still flow', async () => {
  const before = await metric(node.http, 'tidings_director_rejected_total');
  const pub = new ZmqPub();
  pub.connect(node.publisher);
  // A raw PUB socket, as omnibus used: wait for the subscription to reach it.
  await sleep(500);
  await pub.send('steady:{"type":"x","sender":"omnibus-worker","payload":{"n":"omnibus"}}');
  await pub.send('steady:{broken json');
  await pub.send('bad channel:{"a":1}');
  await pub.send(['tidings/1', 'channel', 'steady', '{"n":"native"}', '{"sender":5}']);
  await pub.send(['tidings/1', 'channel', 'steady', 'x'.repeat(5000)]);
  await pub.send(['tidings/9', 'channel', 'steady', '1']);
  published++;
  await bystander.waitFor(() => bystander.messages('steady').length >= published, 10000, 'the omnibus message');
  const after = await metric(node.http, 'tidings_director_rejected_total');
  assert.equal(after - before, 5, 'five rejected publishes counted');
  const omnibus = bystander.messages('steady').find((m) => (m.data as { payload?: { n: string } }).payload?.n === 'omnibus');
  assert.ok(omnibus, 'the omnibus single-frame form is delivered');
  assert.equal(omnibus.sender, 'omnibus-worker', 'omnibus sender read from the message');
  await node.proc.waitFor(/rejected a message on the publisher address/, 5000);
  pub.close();
});

test('the bystander received every message in order and is still connected', async () => {
  await publishSteady();
  await bystander.waitFor(() => bystander.messages('steady').length === published, 10000, `${published} messages`);
  const offsets = bystander.messages('steady').map((m) => m.offset!);
  assert.deepEqual(offsets, Array.from({ length: published }, (_, i) => offsets[0]! + i));
  assert.equal(bystander.closeCode, null);
});
