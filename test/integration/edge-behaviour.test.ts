/**
 * Edge behaviour one client at a time: heartbeats and the idle timeout, the
 * MessagePack subprotocol, token in the URL, slow consumers cut off, and
 * health endpoints.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { decodeMulti, encode as pack } from '@msgpack/msgpack';
import { startSingleNode, type SingleNode, TOKEN_SECRET } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { metric, postJson } from '../helpers/http.js';
import { signToken } from '../../src/auth/sign.js';
import { CloseCodes } from '../../src/protocol/errors.js';

let node: SingleNode;
before(async () => {
  node = await startSingleNode({ TIDINGS_PING_INTERVAL: '1', TIDINGS_IDLE_TIMEOUT: '2.5', TIDINGS_CLIENT_SEND_BUFFER: '1048576', TIDINGS_MAX_MESSAGE_SIZE: '65536' });
});
after(async () => {
  await node?.stop();
});

test('the server pings; a client that answers stays, a silent one is closed with 4004', async () => {
  const token = await signToken({ secret: TOKEN_SECRET, user: 'quiet', ttl: 60, subscribe: ['*'] });
  const silent = new WebSocket(`${node.url}?token=${token}`);
  const frames: string[] = [];
  silent.on('message', (d) => frames.push(d.toString()));
  const closed = new Promise<number>((resolve) => silent.once('close', (code) => resolve(code)));
  const lively = await TestClient.connect(node.url, 'lively'); // answers every ping
  const started = Date.now();
  const code = await closed;
  const after = Date.now() - started;
  assert.equal(code, CloseCodes.IDLE_TIMEOUT.code);
  assert.ok(after >= 2000 && after < 6000, `closed after ${after} ms (idle_timeout 2.5 s, swept every second)`);
  assert.equal(JSON.parse(frames[0]!).type, 'connected', 'a token in the URL is answered with a connected push');
  assert.ok(frames.some((f) => f === '{"type":"ping"}'), 'the silent client was pinged');
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(lively.closeCode, null, 'the client that answers pings is still connected');
  assert.deepEqual(await lively.call('ping'), {});
  lively.close();
});

test('MessagePack subprotocol: binary frames with the same shapes', async () => {
  const token = await signToken({ secret: TOKEN_SECRET, user: 'packer', ttl: 60, subscribe: ['*'], publish: ['*'] });
  const ws = new WebSocket(node.url, ['tidings.v1.msgpack']);
  const got: any[] = [];
  ws.on('message', (d: Buffer, isBinary) => {
    assert.ok(isBinary);
    for (const m of decodeMulti(d) as Iterable<any>) got.push(m);
  });
  await new Promise((r) => ws.once('open', r));
  assert.equal(ws.protocol, 'tidings.v1.msgpack');
  // Pipelined: subscribe is sent before connect is answered, and runs after it.
  ws.send(pack({ id: 1, method: 'connect', params: { token } }));
  ws.send(pack({ id: 2, method: 'subscribe', params: { channel: 'packed' } }));
  const deadline = Date.now() + 5000;
  while (!got.some((m) => m.id === 2) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  ws.send(pack({ id: 3, method: 'publish', params: { channel: 'packed', data: { bin: [1, 2, 3] } } }));
  while (!got.some((m) => m.type === 'message') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(got.find((m) => m.id === 1).result.user, 'packer');
  assert.equal(got.find((m) => m.id === 2).result.channel, 'packed');
  assert.ok(got.findIndex((m) => m.id === 1) < got.findIndex((m) => m.id === 2), 'connect answered first');
  const msg = got.find((m) => m.type === 'message');
  assert.deepEqual(msg.data, { bin: [1, 2, 3] });
  assert.equal(msg.sender, 'packer');
  assert.equal(msg.channel, 'packed');
  ws.close();
});

test('a client that stops reading is cut off at client_send_buffer with 4005; others are unharmed', async () => {
  const healthy = await TestClient.connect(node.url, 'healthy');
  await healthy.call('subscribe', { channel: 'flood' });
  const slow = await TestClient.connect(node.url, 'slow');
  await slow.call('subscribe', { channel: 'flood' });
  const before = await metric(node.http, 'tidings_edge_slow_consumers_total');
  // Stop reading on the slow client's socket: the server's buffer for it fills. ws resumes a socket
  // itself once a chunk it was parsing is done, so its resume is held off until the test reads again.
  const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): unknown } })._socket;
  const resume = socket.resume.bind(socket);
  socket.resume = () => socket;
  socket.pause();
  // It still writes: a pong every 0.5 s keeps it from the idle timeout (2.5 s here) while it does not read.
  const alive = setInterval(() => slow.ws.send('{"type":"pong"}'), 500);
  // Enough to fill the kernel's socket buffers on loopback (several MB) and then ours.
  const payload = 'y'.repeat(60000);
  for (let i = 0; i < 250; i++) {
    const r = await postJson(`${node.http}/api/publish`, { channel: 'flood', data: { i, payload } });
    assert.equal(r.status, 200);
  }
  await healthy.waitFor(() => healthy.messages('flood').length === 250, 30000, 'all 250 on the healthy client');
  const deadline = Date.now() + 5000;
  while ((await metric(node.http, 'tidings_edge_slow_consumers_total')) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  clearInterval(alive);
  assert.equal((await metric(node.http, 'tidings_edge_slow_consumers_total')) - before, 1, 'exactly one slow consumer cut off');
  // Still not reading for a while (longer than a normal close's 2 s grace), then reading again:
  // the queued data was dropped, so its close frame is next after what its socket held, and it learns why.
  await new Promise((r) => setTimeout(r, 2500));
  socket.resume = resume;
  socket.resume();
  await slow.waitClosed(5000);
  assert.equal(slow.closeCode, CloseCodes.SLOW_CONSUMER.code, `closed with 4005, not ${slow.closeCode}`);
  const n = slow.messages('flood').length;
  assert.ok(n < 250, `the slow client got only part of the flood (${n})`);
  assert.deepEqual(slow.messages('flood').map((m) => (m.data as { i: number }).i), Array.from({ length: n }, (_, i) => i), 'what it got is a gap-free prefix');
  assert.equal(healthy.closeCode, null);
  healthy.close();
});

test('health and readiness endpoints', async () => {
  const h = await fetch(`${node.http}/healthz`);
  assert.equal(h.status, 200);
  assert.equal(((await h.json()) as any).status, 'ok');
  const r = await fetch(`${node.http}/readyz`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { ready: true, director: true, subscriber: true, node: (await (await fetch(`${node.http}/healthz`)).json() as any).node });
  const m = await (await fetch(`${node.http}/metrics`)).text();
  assert.match(m, /tidings_edge_connections/);
  assert.match(m, /tidings_director_published_total/);
});
