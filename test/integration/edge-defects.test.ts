/**
 * Smaller defects of the edge found by hostile use, each with its fix shown:
 * a second connect in the same frame (112), an unknown subprotocol (4009), a
 * deeply nested HTTP body (400 / 126 on every route), an aborted request (not
 * an error line), slow request headers (cut at http_headers_timeout) and
 * tokens without exp or with a long life (token_max_lifetime).
 * (The slow consumer's 4005 is in edge-behaviour.test.ts.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { startSingleNode, sleep, TOKEN_SECRET, API_KEY, type SingleNode } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { csRequest } from '../helpers/channelstream.js';
import { metric, postJson } from '../helpers/http.js';
import { signToken } from '../../src/auth/sign.js';
import { sign } from '../../src/compat/signer.js';
import { CloseCodes, ErrorCodes } from '../../src/protocol/errors.js';

const SECRET = 'edge-defects-channelstream-secret';
const HEADERS_TIMEOUT_S = 1;
const MAX_LIFETIME_S = 600;
let node: SingleNode;

before(async () => {
  node = await startSingleNode({
    TIDINGS_SECRET: SECRET,
    TIDINGS_HTTP_HEADERS_TIMEOUT: String(HEADERS_TIMEOUT_S),
    TIDINGS_TOKEN_MAX_LIFETIME: String(MAX_LIFETIME_S),
  });
});
after(async () => {
  await node?.stop();
});

function open(protocols?: string[]): Promise<WebSocket> {
  const ws = new WebSocket(node.url, protocols);
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

test('two connect commands in one frame: the first connects, the second gets 112, nothing is held twice', async () => {
  const baseline = await metric(node.http, 'tidings_director_presence_connections');
  const token = await signToken({ secret: TOKEN_SECRET, user: 'twice', ttl: 60, subscribe: ['*'] });
  const ws = await open();
  const frames: any[] = [];
  ws.on('message', (d) => {
    for (const line of d.toString().split('\n')) if (line) frames.push(JSON.parse(line));
  });
  ws.send(`${JSON.stringify({ id: 1, method: 'connect', params: { token } })}\n${JSON.stringify({ id: 2, method: 'connect', params: { token } })}`);
  const deadline = Date.now() + 5000;
  while (frames.filter((f) => f.id === 1 || f.id === 2).length < 2 && Date.now() < deadline) await sleep(10);
  assert.equal(frames.find((f) => f.id === 1)?.result?.user, 'twice', JSON.stringify(frames));
  assert.equal(frames.find((f) => f.id === 2)?.error?.code, ErrorCodes.ALREADY_CONNECTED.code, JSON.stringify(frames));
  // Served once: a message to the user arrives once, and the director counts one connection.
  await postJson(`${node.http}/api/publish`, { users: ['twice'], data: { n: 1 } });
  while (!frames.some((f) => f.type === 'direct') && Date.now() < deadline) await sleep(10);
  await sleep(200);
  assert.equal(frames.filter((f) => f.type === 'direct').length, 1);
  assert.equal(await metric(node.http, 'tidings_director_presence_connections'), baseline + 1);
  ws.close();
  await closeOf(ws);
  const until = Date.now() + 5000;
  while ((await metric(node.http, 'tidings_director_presence_connections')) !== baseline && Date.now() < until) await sleep(50);
  assert.equal(await metric(node.http, 'tidings_director_presence_connections'), baseline, 'gone with its connection');
});

test('an unknown subprotocol on /ws is refused with 4009; a list holding a known one is served', async () => {
  const ws = await open(['chat.v7']);
  const c = await closeOf(ws);
  assert.equal(c.code, CloseCodes.UNSUPPORTED_PROTOCOL.code);
  assert.match(c.reason, /unsupported subprotocol: chat\.v7/);
  const mixed = await open(['chat.v7', 'tidings.v1.json']);
  assert.equal(mixed.protocol, 'tidings.v1.json');
  mixed.close();
  const none = await TestClient.open(node.url);
  assert.deepEqual((await none.request('ping')).error?.code, ErrorCodes.UNAUTHORIZED.code, 'no subprotocol: JSON');
  none.close();
});

test('a deeply nested JSON body is refused with 400 / 126 on every route, before anything parses it', async () => {
  const body = `${'['.repeat(20000)}${']'.repeat(20000)}`;
  const auth = { authorization: `Bearer ${API_KEY}` };
  for (const path of ['/api/publish', '/api/history', '/api/presence', '/api/channels/deep/', '/api/users/deep/']) {
    const r = await postJson(`${node.http}${path}`, body, auth);
    assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code ?? r.body.error.code, ErrorCodes.PAYLOAD_TOO_DEEP.code, path);
  }
  const cs = await csRequest(node.http, '/user_state', JSON.parse('{"user":"u","user_state":{"a":' + '['.repeat(40) + ']'.repeat(40) + '}}'), {
    secret: SECRET,
    signed: sign('/user_state', SECRET, Math.floor(Date.now() / 1000)),
  });
  assert.equal(cs.status, 400, JSON.stringify(cs.body));
  assert.equal(cs.body.error.code, ErrorCodes.PAYLOAD_TOO_DEEP.code);
  assert.doesNotMatch(node.proc.text(), /"level":50/, 'no error logged for any of them');
});

test('an aborted request is logged at info with its reason, never as an error', async () => {
  const mark = node.proc.text().length;
  const sock = tcpConnect(node.port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.write(`POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"channel":"a",`);
  await sleep(100);
  sock.destroy();
  await node.proc.waitFor(/request aborted by the client/, 5000);
  const lines = node.proc.text().slice(mark).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const aborted = lines.find((l) => l.msg === 'request aborted by the client')!;
  assert.equal(aborted.level, 30, 'info');
  assert.equal(typeof aborted.reason, 'string');
  assert.deepEqual(lines.filter((l) => l.level >= 50), [], 'no error line');
});

test('slow request headers are cut at http_headers_timeout; a normal request is served', async () => {
  const sock: Socket = tcpConnect(node.port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const started = Date.now();
  let answer = '';
  sock.on('data', (d) => (answer += d));
  sock.on('error', () => undefined);
  const closed = new Promise<number>((r) => sock.once('close', () => r(Date.now() - started)));
  sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  // One header line every 100 ms, never the blank line that ends them: a slowloris.
  let i = 0;
  const drip = setInterval(() => {
    if (!sock.destroyed) sock.write(`X-Drip-${i++}: y\r\n`);
  }, 100);
  const after = await Promise.race([closed, sleep(8000).then(() => -1)]);
  clearInterval(drip);
  sock.destroy();
  assert.ok(after >= HEADERS_TIMEOUT_S * 1000 - 50, `not cut before the timeout (${after} ms)`);
  assert.ok(after > 0 && after < HEADERS_TIMEOUT_S * 1000 + 3000, `cut ${after} ms after connecting (http_headers_timeout ${HEADERS_TIMEOUT_S} s)`);
  assert.match(answer, /^HTTP\/1\.1 408/);
  assert.equal((await fetch(`${node.http}/healthz`)).status, 200);
});

test('token_max_lifetime: a token without exp is refused; a long one is cut at iat + the limit', async () => {
  const key = new TextEncoder().encode(TOKEN_SECRET);
  const noExp = await new SignJWT({ grants: { subscribe: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).setSubject('forever').setIssuedAt().sign(key);
  const c = await TestClient.open(node.url);
  const r = await c.request('connect', { token: noExp });
  assert.equal(r.error?.code, ErrorCodes.TOKEN_INVALID.code);
  assert.match(r.error!.message, /no exp/);
  await c.waitClosed();
  assert.equal(c.closeCode, CloseCodes.TOKEN_INVALID.code);

  const iat = Math.floor(Date.now() / 1000);
  const yearLong = await new SignJWT({ grants: { subscribe: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).setSubject('long').setIssuedAt(iat).setExpirationTime(iat + 365 * 86400).sign(key);
  const long = await TestClient.open(node.url);
  const ok = await long.request('connect', { token: yearLong });
  assert.equal(ok.result?.expires, iat + MAX_LIFETIME_S, JSON.stringify(ok));
  long.close();

  const old = await new SignJWT({ grants: {} }).setProtectedHeader({ alg: 'HS256' }).setSubject('old').setIssuedAt(iat - MAX_LIFETIME_S - 10).setExpirationTime(iat + 3600).sign(key);
  const stale = await TestClient.open(node.url);
  assert.equal((await stale.request('connect', { token: old })).error?.code, ErrorCodes.TOKEN_EXPIRED.code);
  await stale.waitClosed();
  assert.equal(stale.closeCode, CloseCodes.TOKEN_EXPIRED.code);
});
