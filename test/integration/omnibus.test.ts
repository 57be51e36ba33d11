/**
 * django-omnibus clients on a two-node cluster (node A: director + 2 edge
 * workers, omnibus' HTTP authenticator asking a web app served by this test;
 * node B: forwarder + 2 edge workers, omnibus' user authenticator), over a
 * plain websocket at /ec and over SockJS under /ec/, with an omnibus client
 * written from the wire facts (test/helpers/omnibus.ts), a Python worker
 * publishing omnibus frames with python3-zmq, native clients, the HTTP API
 * and a channelstream connection sharing the one channel space.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createHmac } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import WebSocket from 'ws';
import { freePorts } from '../helpers/ports.js';
import { serve, API_KEY, TOKEN_SECRET, type TidingsProcess } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { OmnibusClient } from '../helpers/omnibus.js';
import { postJson } from '../helpers/http.js';
import { csRequest, CsClient } from '../helpers/channelstream.js';

const DJANGO_KEY = 'django-insecure-test-secret-key';
const SECRET = 'shared-app-secret';
const token = (userId: string): string => createHmac('sha1', DJANGO_KEY).update(userId).digest('hex');
/** The web app's users: 1 is staff (may publish), 2 is not. */
const STAFF = new Set(['1']);

interface Node {
  proc: TidingsProcess;
  http: string;
  ws: string;
  publisher: string;
}
let A: Node;
let B: Node;
/** Every process started, stopped in after() even when start-up failed half way. */
const procs: TidingsProcess[] = [];
let app: Server;
/** Questions the web app was asked, in order. */
const asked: any[] = [];
const children: ChildProcess[] = [];
const clients: Array<{ close(): void }> = [];

/** The web app's HTTP authenticator: omnibus' UserAuthenticator rules, and a cookie session for native clients. */
function startApp(port: number): Promise<Server> {
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const sig = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
      const answer = (o: unknown, status = 200): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(o));
      };
      if (req.headers['x-tidings-signature'] !== sig) return answer({ error: 'bad signature' }, 403);
      const q = JSON.parse(body);
      asked.push(q);
      if (q.protocol === 'native') {
        const user = /session=(\w+)/.exec(q.headers?.cookie ?? '')?.[1] ?? null;
        if (!user) return answer({ allow: false, reason: 'no session' });
        return answer({ allow: q.channel !== 'forbidden', user });
      }
      const parts = String(q.args).split(':');
      if (parts.some((p: string) => p === 'slow')) return void setTimeout(() => answer({ allow: true }), 1500);
      const user = parts.length === 3 && parts[2] === token(parts[1]!) ? parts[1]! : null;
      if (parts.length === 3 && user === null) return answer({ allow: false, reason: 'bad token' });
      if (q.action === 'connect') return answer({ allow: true, user });
      if (q.action === 'publish') return answer({ allow: user !== null && STAFF.has(user) });
      return answer({ allow: user !== null && q.channel !== 'forbidden' });
    });
  });
  return new Promise((r) => srv.listen(port, '127.0.0.1', () => r(srv)));
}

before(async () => {
  const [appPort, aPort, aSub, aPub, aCmd, bPort, bSub, bPub, bCmd] = await freePorts(9);
  app = await startApp(appPort!);
  const common = { TIDINGS_WORKERS: '2', TIDINGS_TOKEN_SECRET: TOKEN_SECRET, TIDINGS_API_KEYS: API_KEY, TIDINGS_SECRET: SECRET, TIDINGS_SERVER_HOST: '127.0.0.1' };
  const a = { sub: `tcp://127.0.0.1:${aSub}`, pub: `tcp://127.0.0.1:${aPub}`, cmd: `tcp://127.0.0.1:${aCmd}` };
  const pa = serve('A', {
    ...common,
    TIDINGS_SERVER_PORT: String(aPort),
    TIDINGS_SUBSCRIBER_ADDRESS: a.sub,
    TIDINGS_PUBLISHER_ADDRESS: a.pub,
    TIDINGS_COMMAND_ADDRESS: a.cmd,
    TIDINGS_OMNIBUS_AUTHENTICATOR: 'http',
    TIDINGS_AUTH_URL: `http://127.0.0.1:${appPort}/tidings-auth`,
    TIDINGS_AUTH_NATIVE: 'true',
    TIDINGS_AUTH_TIMEOUT: '0.5',
  });
  const pb = serve('B', {
    ...common,
    TIDINGS_SERVER_PORT: String(bPort),
    TIDINGS_DIRECTOR_ENABLED: 'false',
    TIDINGS_FORWARDER_ENABLED: 'true',
    TIDINGS_SUBSCRIBER_ADDRESS: `tcp://127.0.0.1:${bSub}`,
    TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${bPub}`,
    TIDINGS_COMMAND_ADDRESS: `tcp://127.0.0.1:${bCmd}`,
    TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: a.sub,
    TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: a.pub,
    TIDINGS_DIRECTOR_COMMAND_ADDRESS: a.cmd,
    TIDINGS_OMNIBUS_AUTHENTICATOR: 'user',
    TIDINGS_DJANGO_SECRET_KEY: DJANGO_KEY,
  });
  procs.push(pa, pb);
  await Promise.all([pa.waitFor(/"msg":"node ready"/, 60000), pb.waitFor(/"msg":"node ready"/, 60000)]);
  A = { proc: pa, http: `http://127.0.0.1:${aPort}`, ws: `ws://127.0.0.1:${aPort}`, publisher: a.pub };
  B = { proc: pb, http: `http://127.0.0.1:${bPort}`, ws: `ws://127.0.0.1:${bPort}`, publisher: `tcp://127.0.0.1:${bPub}` };
});

after(async () => {
  for (const c of clients) c.close();
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.stop()));
  app?.close();
});

function keep<T extends { close(): void }>(c: T): T {
  clients.push(c);
  return c;
}

let staffA: OmnibusClient;
let userB1: OmnibusClient;
let userB2: OmnibusClient;

test('omnibus clients over a websocket and SockJS on both nodes: authenticate, subscribe, exchange channel messages', async () => {
  // Node A asks the web app (HTTP authenticator); node B checks omnibus' HMAC-SHA1 tokens itself.
  staffA = keep(await OmnibusClient.websocket(`${A.ws}/ec`, `1:${token('1')}`));
  userB1 = keep(await OmnibusClient.sockjs(`${B.http}/ec`, ['xhr-polling'], `2:${token('2')}`));
  userB2 = keep(await OmnibusClient.websocket(`${B.ws}/ec`, `2:${token('2')}`));
  for (const c of [staffA, userB1, userB2]) {
    assert.deepEqual(await c.waitReply('authenticate'), { type: 'authenticate', success: true, payload: null });
    assert.deepEqual(await c.subscribe('news'), { type: 'subscribe', success: true, payload: { channel: 'news' } });
  }
  // An unknown command gets omnibus' own answer.
  userB2.command('foo', 'x');
  assert.deepEqual(await userB2.waitReply('foo'), { type: 'foo', success: false, payload: null });
  // Subscribing twice fails, as in omnibus.
  const again = await userB2.subscribe('news');
  assert.equal(again.success, false);
  assert.equal(again.payload.error.name, 'already_subscribed');

  staffA.publish('news', 'chat', { text: 'hello from A' });
  const expected = `news:${JSON.stringify({ type: 'chat', sender: staffA.identifier, payload: { text: 'hello from A' } })}`;
  for (const c of [userB1, userB2]) {
    await c.waitFor(() => c.messages.some((m) => m.raw === expected), 'the staff message on B');
  }
  // A non-staff user may not publish with omnibus' rules: told so, not silently ignored.
  userB2.publish('news', 'chat', { text: 'not staff' });
  const denied = await userB2.waitReply('publish', 'news');
  assert.equal(denied.success, false);
  assert.equal(denied.payload.error.name, 'permission_denied');
});

test('Python workers, the HTTP API, native clients and channelstream share the channel space with omnibus clients, exactly matched', async () => {
  const native = keep(await TestClient.connect(`${B.ws}/ws`, 'nat', { subscribe: ['*'], publish: ['news'] }));
  await native.call('subscribe', { channel: 'news' });
  await native.call('subscribe', { channel: 'newsroom' });
  assert.equal((await userB1.subscribe('newsroom')).success, true);

  // A Python omnibus worker (pyzmq PUB, one text frame) publishing to node B's publisher address.
  const py = spawn('/usr/bin/python3', [
    '-c',
    `
import sys, time, json, zmq
s = zmq.Context().socket(zmq.PUB)
s.connect(sys.argv[1])
for n in range(100):
    time.sleep(0.1)
    s.send_string('news:' + json.dumps({'sender': 'backend-worker', 'type': 'update', 'payload': {'n': n}}))
`,
    B.publisher,
  ]);
  children.push(py);
  // The frame as Python wrote it (json.dumps' spacing and key order), shown verbatim.
  const fromPython = (c: OmnibusClient) => c.messages.find((m) => m.message.sender === 'backend-worker');
  for (const c of [staffA, userB2]) await c.waitFor(() => fromPython(c) !== undefined, 'a Python worker message');
  py.kill('SIGKILL');
  const m = fromPython(staffA)!;
  assert.equal(m.raw, `news:{"sender": "backend-worker", "type": "update", "payload": {"n": ${m.message.payload.n}}}`);
  await native.waitFor(() => native.messages('news').some((p) => p.sender === 'backend-worker'), 10000, 'python message on the native client');

  // HTTP API and native publishes are shown wrapped, with the sender Tidings stamped.
  const r = await postJson(`${A.http}/api/publish`, { channel: 'news', data: { text: 'from the API' }, sender: 'ops' }, { 'x-api-key': API_KEY });
  assert.equal(r.status, 200);
  await native.call('publish', { channel: 'news', data: { text: 'from native' } });
  for (const c of [staffA, userB1]) {
    await c.waitFor(() => c.messages.some((x) => x.raw === 'news:{"type":"message","sender":"ops","payload":{"text":"from the API"}}'), 'API message');
    await c.waitFor(() => c.messages.some((x) => x.raw === 'news:{"type":"message","sender":"nat","payload":{"text":"from native"}}'), 'native message');
  }

  // Omnibus -> native: the data is the omnibus object with the connection's identifier as sender,
  // whatever the client wrote there; the push's sender is the proven user.
  staffA.raw(`news:${JSON.stringify({ type: 'chat', sender: 'someone-else', payload: { text: 'spoof?' } })}`);
  await native.waitFor(() => native.messages('news').some((p) => (p.data as any)?.payload?.text === 'spoof?'), 10000, 'omnibus message on the native client');
  const spoof = native.messages('news').find((p) => (p.data as any)?.payload?.text === 'spoof?')!;
  assert.deepEqual(spoof.data, { type: 'chat', sender: staffA.identifier, payload: { text: 'spoof?' } });
  assert.equal(spoof.sender, '1');

  // channelstream: a connection registered on A, its websocket on B; both directions.
  const reg = await csRequest(A.http, '/connect', { username: 'csuser', channels: ['news'] }, { secret: SECRET });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  const cs = keep(await CsClient.open(`${B.ws}/ws`, reg.body.conn_id));
  for (let i = 0; i < 40 && !cs.items.some((x) => x.type === 'message' && JSON.stringify(x.message).includes('to channelstream')); i++) {
    staffA.publish('news', 'chat', { text: `to channelstream ${i}` });
    await new Promise((res) => setTimeout(res, 150));
  }
  assert.ok(cs.items.some((x) => x.type === 'message' && JSON.stringify(x.message).includes('to channelstream')), 'omnibus message on the channelstream connection');
  const post = await csRequest(A.http, '/message', [{ channel: 'news', user: 'csuser', message: { text: 'from channelstream' } }], { secret: SECRET });
  assert.equal(post.status, 200, JSON.stringify(post.body));
  await userB1.waitFor(() => userB1.messages.some((x) => x.channel === 'news' && x.raw.includes('from channelstream')), 'channelstream message on omnibus');

  // Exact matching: a newsroom message reaches newsroom subscribers only.
  await postJson(`${A.http}/api/publish`, { channel: 'newsroom', data: { text: 'room only' } }, { 'x-api-key': API_KEY });
  await userB1.waitFor(() => userB1.messages.some((x) => x.channel === 'newsroom'), 'newsroom on its subscriber');
  await native.waitFor(() => native.messages('newsroom').length === 1, 10000, 'newsroom on native');
  await postJson(`${A.http}/api/publish`, { channel: 'news', data: { text: 'barrier' } }, { 'x-api-key': API_KEY });
  await userB2.waitFor(() => userB2.messages.some((x) => x.raw.includes('barrier')), 'barrier');
  assert.equal(userB2.messages.filter((x) => x.channel !== 'news').length, 0, 'a news subscriber got nothing of newsroom');
});

test("authenticators: omnibus' user tokens and anonymous identifiers; the web app's answers, cache, signature and timeout", async () => {
  // User authenticator (node B): a wrong token, then an anonymous identifier that may not subscribe.
  const bad = keep(await OmnibusClient.websocket(`${B.ws}/ec`, `2:${token('3')}`));
  const badReply = await bad.waitReply('authenticate');
  assert.equal(badReply.success, false);
  assert.equal(badReply.payload.error.name, 'auth_denied');
  const anon = keep(await OmnibusClient.websocket(`${B.ws}/ec`));
  assert.equal((await anon.waitReply('authenticate')).success, true);
  const anonSub = await anon.subscribe('news');
  assert.equal(anonSub.success, false);
  assert.equal(anonSub.payload.error.code, 167);

  // HTTP authenticator (node A): the app's rules decide; the same question is asked once (cache).
  const before = asked.length;
  const u = keep(await OmnibusClient.sockjs(`${A.http}/ec`, ['xhr-streaming'], `2:${token('2')}`));
  assert.equal((await u.waitReply('authenticate')).success, true);
  const forbidden = await u.subscribe('forbidden');
  assert.equal(forbidden.success, false);
  assert.equal(forbidden.payload.error.name, 'auth_denied');
  assert.equal((await u.subscribe('cached')).success, true);
  u.command('unsubscribe', 'cached');
  assert.equal((await u.waitReply('unsubscribe', 'cached')).success, true);
  assert.equal((await u.subscribe('cached')).success, true);
  const mine = asked.slice(before).filter((q) => q.identifier === u.identifier);
  assert.deepEqual(
    mine.map((q) => `${q.action} ${q.channel ?? ''}`.trim()),
    ['connect', 'subscribe forbidden', 'subscribe cached', 'unsubscribe cached'],
    'the second subscribe to cached was answered from the cache',
  );
  assert.equal(mine[0].args, `${u.identifier}:2:${token('2')}`, 'the app gets the !authenticate arguments');
  assert.equal(mine[0].protocol, 'omnibus');

  // An app that does not answer within auth_timeout refuses (fails closed) with 165.
  const slow = keep(await OmnibusClient.websocket(`${A.ws}/ec`, 'slow:slow'));
  // Frames sent meanwhile wait in order behind it, at most 256 of them; the rest are refused (108), not dropped.
  for (let i = 0; i < 300; i++) slow.raw(`!foo:${i}`);
  const slowReply = await slow.waitReply('authenticate');
  assert.equal(slowReply.success, false);
  assert.equal(slowReply.payload.error.code, 165);
  await slow.waitFor(() => slow.replies.filter((r) => r.command === 'foo').length === 256, '256 queued frames answered');
  const refused = slow.replies.filter((r) => r.command === 'publish');
  assert.equal(refused.length, 44);
  assert.ok(refused.every((r) => r.reply.payload.error.code === 108));

  // Native clients without a token are authenticated by the same app (its session cookie) when auth_native is on.
  const ws = new WebSocket(`${A.ws}/ws`, { headers: { cookie: 'session=alice' } });
  await new Promise((r) => ws.once('open', r));
  const replies: any[] = [];
  // A frame holds one or more lines (docs/protocol.md): a publish's reply may share one with the message it published.
  ws.on('message', (d: Buffer) => {
    for (const line of d.toString().split('\n')) if (line) replies.push(JSON.parse(line));
  });
  ws.send(JSON.stringify({ id: 1, method: 'connect', params: {} }));
  ws.send(JSON.stringify({ id: 2, method: 'subscribe', params: { channel: 'forbidden' } }));
  ws.send(JSON.stringify({ id: 3, method: 'subscribe', params: { channel: 'news' } }));
  const byId = (id: number) => replies.find((r) => r.id === id);
  await staffA.waitFor(() => byId(3) !== undefined && byId(2) !== undefined, 'native replies');
  assert.equal(byId(1).result.user, 'alice');
  assert.equal(byId(2).error.code, 166);
  assert.equal(byId(3).result.channel, 'news');
  // Publishes read in place (several in one frame) ask the app too: refused where it says no, the others go.
  ws.send(['forbidden', 'news', 'forbidden'].map((channel, i) => `{"id":${4 + i},"method":"publish","params":{"channel":"${channel}","data":{"n":${i}}}}`).join('\n'));
  await staffA.waitFor(() => [4, 5, 6].every((id) => byId(id) !== undefined), 'native publish replies');
  assert.equal(byId(4).error.code, 166);
  assert.equal(typeof byId(5).result.offset, 'number');
  assert.equal(byId(6).error.code, 166);
  assert.ok(asked.some((q) => q.protocol === 'native' && q.action === 'publish' && q.channel === 'forbidden'), 'the app was asked');
  ws.close();
  const noCookie = new WebSocket(`${A.ws}/ws`);
  await new Promise((r) => noCookie.once('open', r));
  const closed = new Promise<number>((r) => noCookie.once('close', (code) => r(code)));
  noCookie.send(JSON.stringify({ id: 1, method: 'connect', params: {} }));
  assert.equal(await closed, 4020);
});

test('bad input gets a clear answer and hurts no one: deep payloads, unsubscribed channels, bad frames, oversized frames', async () => {
  const c = keep(await OmnibusClient.websocket(`${A.ws}/ec`, `1:${token('1')}`));
  await c.waitReply('authenticate');
  await c.subscribe('news');
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  c.publish('news', 'chat', deep);
  c.publish('elsewhere', 'chat', {});
  c.raw('no colon here');
  c.raw('news:[1,2]');
  const errors = async (n: number) => {
    await c.waitFor(() => c.replies.filter((r) => r.command === 'publish').length >= n, `${n} publish replies`);
    return c.replies.filter((r) => r.command === 'publish').map((r) => r.reply.payload.error.code);
  };
  assert.deepEqual(await errors(4), [126, 107, 168, 168]);
  // An oversized frame closes only that connection (1009); the others go on.
  const closed = new Promise<void>((r) => {
    const t = setInterval(() => {
      if (c.closeCode !== null) {
        clearInterval(t);
        r();
      }
    }, 10);
  });
  c.raw(`news:${JSON.stringify({ type: 'chat', payload: 'x'.repeat(70_000) })}`);
  await closed;
  assert.equal(c.closeCode, 1009);
  staffA.publish('news', 'chat', { text: 'still fine' });
  await userB2.waitFor(() => userB2.messages.some((m) => m.raw.includes('still fine')), 'others unaffected');
});
