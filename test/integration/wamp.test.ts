/**
 * Tidings as the WAMP router of real Autobahn clients, across a director and
 * two forwarder nodes: Autobahn|Python (Debian's python3-autobahn, json and
 * msgpack) and Autobahn|JS (npm autobahn) publish and subscribe with native
 * and channelstream clients on one channel space, register and call
 * procedures across nodes; a raw peer checks the protocol's error paths; and
 * kill -9 of a callee's node gives its caller wamp.error.canceled while
 * Autobahn's own reconnect brings the callee back on the other node.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { signToken } from '../../src/auth/sign.js';
import { killAll, serve, startCluster, startSingleNode, API_KEY, TOKEN_SECRET, type Cluster, type SingleNode } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { postJson, metric } from '../helpers/http.js';
import { csRequest, CsClient } from '../helpers/channelstream.js';
import { sign } from '../../src/compat/signer.js';
import { PyWamp, PYTHON, RawWamp, loadAutobahnJs, openJsSession } from '../helpers/wamp.js';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'docs', 'examples', 'wamp_component.py');

const SECRET = 'wamp-test-channelstream-secret';
const CLUSTER_ENV = { TIDINGS_PRESENCE_TTL: '2', TIDINGS_SECRET: SECRET, TIDINGS_CLIENT_SEND_BUFFER: '262144' };
let cluster: Cluster;
/** A single node with anonymous access on, its own realm and WAMP path under a base URL. */
let anon: SingleNode;
let py: PyWamp;
let autobahn: any;
const closers: Array<() => void> = [];

/** channelstream requests signed here (the channelstream tests check Python's signatures). */
const cs = (base: string, path: string, body: unknown) => csRequest(base, path, body, { secret: SECRET, signed: sign(path, SECRET, Math.floor(Date.now() / 1000)) });
const wampUrl = (i: number): string => `ws://127.0.0.1:${cluster.nodes[i]!.port}/wamp`;
/** The native path: WAMP clients offering only WAMP subprotocols are served there too. */
const wsUrl = (i: number): string => cluster.nodes[i]!.url;

function ticket(user: string, grants: { subscribe?: string[]; publish?: string[]; call?: string[]; register?: string[] } = {}): Promise<string> {
  return signToken({ secret: TOKEN_SECRET, user, ttl: 3600, subscribe: ['*'], publish: ['*'], call: ['*'], register: ['*'], ...grants });
}

before(async () => {
  // Started together; each is kept as soon as it is up, so after() stops whatever started.
  const started = await Promise.allSettled([
    startCluster(2, 1, CLUSTER_ENV).then((c) => (cluster = c)),
    PyWamp.start().then((p) => (py = p)),
    startSingleNode({ TIDINGS_ALLOW_ANONYMOUS: 'true', TIDINGS_ANONYMOUS_CHANNELS: 'public.*', TIDINGS_WAMP_REALM: 'com.app', TIDINGS_WAMP_PATH: '/router', TIDINGS_SERVER_BASE_URL: '/rt' }).then((n) => (anon = n)),
  ]);
  for (const s of started) if (s.status === 'rejected') throw s.reason;
  autobahn = loadAutobahnJs();
});

after(async () => {
  for (const c of closers) {
    try {
      c();
    } catch {
      // closed already
    }
  }
  await py?.stop();
  await Promise.all([cluster?.stop(), anon?.stop()]);
  // A cluster that failed to start is not in `cluster`: stop the processes this file started, by PID.
  killAll();
});

async function pyOpen(name: string, urls: string[], serializer: 'json' | 'msgpack', user: string, extra: Record<string, unknown> = {}): Promise<void> {
  py.send({ op: 'open', name, urls, serializer, ticket: await ticket(user), ...extra });
  const join = await py.waitFor((e) => e.name === name && e.ev === 'join', 10000, `${name} joined`);
  assert.equal(join.authid, user, 'authid is the token subject');
  assert.equal(join.authmethod, 'ticket');
}

test('pub/sub: Autobahn (python json + msgpack, JS) and native and channelstream subscribers share channels across nodes', async () => {
  await pyOpen('pj', [wampUrl(0)], 'json', 'pj-user');
  await pyOpen('pm', [wsUrl(1)], 'msgpack', 'pm-user');
  const js = await openJsSession(autobahn, wampUrl(1), await ticket('js-user'), 'msgpack');
  closers.push(() => js.connection.close());
  const jsEvents: Array<{ args: unknown[]; kwargs: Record<string, unknown>; details: any }> = [];
  await js.session.subscribe('com.news', (args: unknown[], kwargs: Record<string, unknown>, details: unknown) => {
    jsEvents.push({ args, kwargs, details });
  });
  for (const name of ['pj', 'pm']) assert.equal((await py.request({ op: 'subscribe', name, topic: 'com.news' })).ev, 'subscribed');
  // Exact matching: neighbours of the topic never arrive.
  assert.equal((await py.request({ op: 'subscribe', name: 'pm', topic: 'com.news2' })).ev, 'subscribed');
  const native = await TestClient.connect(cluster.nodes[0]!.url, 'nate');
  closers.push(() => native.close());
  await native.call('subscribe', { channel: 'com.news' });
  const conn = await cs(cluster.director.http, '/connect', { username: 'carol', channels: ['com.news'] });
  assert.equal(conn.status, 200, JSON.stringify(conn.body));
  const carol = await CsClient.open(cluster.nodes[1]!.url, conn.body.conn_id);
  closers.push(() => carol.close());
  // channelstream's websocket has no subscribed signal: wait until its edge reports it in presence.
  await waitUntil(async () => (await cs(cluster.director.http, '/info', { info: { channels: ['com.news'] } })).body.channels?.['com.news']?.users?.includes('carol'), 'carol in presence');

  // 1. A JSON Autobahn publish reaches every kind of subscriber; its publisher is excluded (exclude_me default).
  const pub = await py.request({ op: 'publish', name: 'pj', topic: 'com.news', args: ['hello'] });
  assert.equal(pub.ev, 'published');
  assert.ok(Number.isSafeInteger(pub.id) && pub.id > 0, 'a publication id');
  await py.waitFor((e) => e.name === 'pm' && e.ev === 'event' && e.args[0] === 'hello', 5000, 'pm got hello');
  const pmHello = py.of('pm', 'event').find((e) => e.args[0] === 'hello')!;
  assert.equal(pmHello.publisher_authid, 'pj-user', 'publisher disclosed from the token');
  await waitUntil(() => jsEvents.length === 1, 'js got hello');
  assert.deepEqual(jsEvents[0]!.args, ['hello']);
  assert.equal(jsEvents[0]!.details.publisher_authid, 'pj-user');
  assert.equal(jsEvents[0]!.details.publication, pub.id, 'EVENT and PUBLISHED carry the same publication id');
  await native.waitFor(() => native.messages('com.news').length === 1, 5000, 'native got hello');
  assert.equal(native.messages('com.news')[0]!.data, 'hello');
  assert.equal(native.messages('com.news')[0]!.sender, 'pj-user');
  await carol.waitFor(() => carol.of('message').length === 1, 5000, 'channelstream got hello');
  assert.equal(carol.of('message')[0].message, 'hello');
  assert.equal(carol.of('message')[0].user, 'pj-user');

  // 2. A msgpack publish with bytes and keyword arguments: JSON subscribers get the same bytes back.
  await py.request({ op: 'publish', name: 'pm', topic: 'com.news', args: [1, { __bytes__: '00ff10e3' }], kwargs: { k: 'v', b: { __bytes__: 'cafe' } } });
  const bin = await py.waitFor((e) => e.name === 'pj' && e.ev === 'event' && e.args[0] === 1, 5000, 'pj got the binary event');
  assert.deepEqual(bin.args, [1, { __bytes__: '00ff10e3' }]);
  assert.deepEqual(bin.kwargs, { k: 'v', b: { __bytes__: 'cafe' } });
  assert.equal(bin.publisher_authid, 'pm-user');
  await native.waitFor(() => native.messages('com.news').length === 2, 5000, 'native got the envelope');
  assert.deepEqual(native.messages('com.news')[1]!.data, { args: [1, '\u0000AP8Q4w=='], kwargs: { k: 'v', b: '\u0000yv4=' } }, 'bytes as the spec\'s \\0-base64 strings');

  // 3. Native publishes become EVENTs with the data as the one argument (or the envelope's args/kwargs).
  await native.call('publish', { channel: 'com.news', data: { text: 'from native' } });
  const r = await postJson(`${cluster.nodes[1]!.http}/api/publish`, { channel: 'com.news', data: { args: ['x'], kwargs: { y: 2 } } });
  assert.equal(r.status, 200);
  const fromNative = await py.waitFor((e) => e.name === 'pj' && e.ev === 'event' && e.args[0]?.text === 'from native', 5000, 'pj got the native message');
  assert.equal(fromNative.publisher_authid, 'nate');
  const fromApi = await py.waitFor((e) => e.name === 'pm' && e.ev === 'event' && e.args[0] === 'x', 5000, 'pm got the API envelope');
  assert.deepEqual(fromApi.kwargs, { y: 2 });

  // 4. exclude_me false: the publisher receives its own event; the neighbour topic got nothing.
  await py.request({ op: 'publish', name: 'pj', topic: 'com.news', args: ['me too'], exclude_me: false });
  await py.waitFor((e) => e.name === 'pj' && e.ev === 'event' && e.args[0] === 'me too', 5000, 'pj got its own event');
  await py.waitFor((e) => e.name === 'pm' && e.ev === 'event' && e.args[0] === 'me too', 5000, 'pm got it too');
  assert.equal(py.of('pj', 'event').filter((e) => e.args[0] === 'hello').length, 0, 'exclude_me default: no own event');
  assert.equal(py.of('pm', 'event').filter((e) => e.topic === 'com.news2').length, 0, 'exact matching');
  assert.deepEqual(
    py.of('pm', 'event').map((e) => e.args[0]?.text ?? e.args[0]),
    ['hello', 'from native', 'x', 'me too'],
    'pm got the channel in order, its own msgpack publish excluded',
  );
  // JS publishes (msgpack), acknowledged, reach Python.
  const jsPub = await js.session.publish('com.news', ['from js'], {}, { acknowledge: true });
  assert.ok(jsPub.id > 0);
  await py.waitFor((e) => e.name === 'pj' && e.ev === 'event' && e.args[0] === 'from js', 5000, 'pj got the JS event');
});

test('RPC across nodes with both serializers: results, errors, caller disclosure, timeouts, permissions', async () => {
  // The callee on node 2 (msgpack), callers on node 1 (Python json, JS json).
  await pyOpen('callee', [wampUrl(1)], 'msgpack', 'callee-user');
  await pyOpen('caller', [wampUrl(0)], 'json', 'caller-user');
  for (const [procedure, kind] of [['com.add', 'add'], ['com.echo', 'echo'], ['com.whoami', 'whoami'], ['com.fail', 'fail'], ['com.sleep', 'sleep']]) {
    const r = await py.request({ op: 'register', name: 'callee', procedure, kind });
    assert.equal(r.ev, 'registered', JSON.stringify(r));
  }
  const add = await py.request({ op: 'call', name: 'caller', procedure: 'com.add', args: [2, 3, 4] });
  assert.deepEqual(add.args, [9]);
  const echo = await py.request({ op: 'call', name: 'caller', procedure: 'com.echo', args: [{ __bytes__: 'deadbeef' }, 'text'] });
  assert.deepEqual(echo.args, [[{ __bytes__: 'deadbeef' }, 'text']], 'bytes survive json -> msgpack -> json');
  const who = await py.request({ op: 'call', name: 'caller', procedure: 'com.whoami' });
  assert.deepEqual(who.args, ['caller-user'], 'caller_authid from the token');
  const fail = await py.request({ op: 'call', name: 'caller', procedure: 'com.fail' });
  assert.equal(fail.error, 'com.example.failed', 'the callee\'s error URI reaches the caller');
  assert.deepEqual(fail.args, ['it failed on purpose']);
  assert.deepEqual(fail.kwargs, { code: 7 });
  const none = await py.request({ op: 'call', name: 'caller', procedure: 'com.nothing' });
  assert.equal(none.error, 'wamp.error.no_such_procedure');
  const slow = await py.request({ op: 'call', name: 'caller', procedure: 'com.sleep', args: [2], timeout: 300 });
  assert.equal(slow.error, 'wamp.error.timeout', 'the caller\'s timeout option');

  // Autobahn|JS (json) on node 1 calls the msgpack callee on node 2; a second registration is refused.
  const js = await openJsSession(autobahn, wampUrl(0), await ticket('js-caller'), 'json');
  closers.push(() => js.connection.close());
  assert.equal(await js.session.call('com.add', [40, 2]), 42);
  await assert.rejects(js.session.register('com.add', () => 0), (e: any) => e.error === 'wamp.error.procedure_already_exists');
  // A JS callee, called from Python on the other node.
  await js.session.register('com.js.upper', (args: string[], _kw: unknown, details: any) => `${args[0]!.toUpperCase()} for ${details.caller_authid}`);
  const upper = await py.request({ op: 'call', name: 'callee', procedure: 'com.js.upper', args: ['hi'] });
  assert.deepEqual(upper.args, ['HI for callee-user']);
  assert.equal(await metric(cluster.director.http, 'tidings_director_wamp_registrations'), 6, 'the director\'s registry holds the six procedures');

  // Grants: a token without call or register grants (and publish limited) is refused with not_authorized.
  const limited = await RawWamp.join(wampUrl(1), await ticket('limited', { call: [], register: [], publish: ['other'] }));
  closers.push(() => limited.close());
  limited.send([48, 1, {}, 'com.add', [1]]);
  assert.equal((await limited.next((m) => m[0] === 8 && m[2] === 1))[4], 'wamp.error.not_authorized');
  limited.send([64, 2, {}, 'com.mine']);
  assert.equal((await limited.next((m) => m[0] === 8 && m[2] === 2))[4], 'wamp.error.not_authorized');
  limited.send([16, 3, { acknowledge: true }, 'com.news', ['x']]);
  assert.equal((await limited.next((m) => m[0] === 8 && m[2] === 3))[4], 'wamp.error.not_authorized');
});

test('docs/examples/wamp_component.py runs against the cluster as written', async () => {
  const token = await ticket('doc-user', { subscribe: ['com.example.*'], publish: ['com.example.*'], call: ['com.example.*'], register: ['com.example.*'] });
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) =>
    execFile(PYTHON, [EXAMPLE, wampUrl(1), token], { timeout: 20000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve({ stdout }))),
  );
  assert.match(stdout, /^joined as doc-user session \d+$/m);
  assert.match(stdout, /^add\(2, 3\) = 5$/m);
  assert.match(stdout, /^event: hello from python \{'mood': 'good'\}$/m);
  assert.match(stdout, /^left: wamp\.close\.goodbye_and_out$/m);
});

test('protocol violations, authentication and limits: ABORT with the spec\'s reasons, ERRORs with standard URIs', async () => {
  const url = wampUrl(0);
  const hello = (realm = 'realm1', details: Record<string, unknown> = { roles: { subscriber: {} }, authmethods: ['ticket'] }) => [1, realm, details];
  const aborted = async (peer: RawWamp, reason: string): Promise<unknown[]> => {
    const a = await peer.next((m) => m[0] === 3);
    assert.equal(a[2], reason, JSON.stringify(a));
    await peer.waitClosed();
    assert.equal(peer.closeCode, 4035);
    return a;
  };
  let p = await RawWamp.open(url);
  p.send(hello('other-realm'));
  await aborted(p, 'wamp.error.no_such_realm');
  p = await RawWamp.open(url);
  p.send(hello('realm1', { roles: { subscriber: {} } }));
  await aborted(p, 'wamp.error.no_matching_auth_method'); // anonymous is off on this cluster
  p = await RawWamp.open(url);
  p.send(hello());
  await p.next((m) => m[0] === 4 && m[1] === 'ticket');
  p.send([5, 'not-a-token', {}]);
  await aborted(p, 'wamp.error.authentication_denied');
  p = await RawWamp.open(url);
  p.send([32, 1, {}, 'com.x']);
  await aborted(p, 'wamp.error.protocol_violation'); // before HELLO
  p = await RawWamp.open(url);
  p.send('not json');
  await aborted(p, 'wamp.error.protocol_violation');

  const token = await ticket('raw');
  for (const bad of [[999, 1], { not: 'a list' }, [1, 'realm1', { roles: { subscriber: {} } }], [70, 5, {}], [16, 0, {}, 'com.x'], [8, 32, 1, {}, 'x.y']]) {
    p = await RawWamp.join(url, token);
    p.send(bad);
    const a = await aborted(p, 'wamp.error.protocol_violation');
    assert.equal(typeof (a[1] as { message: string }).message, 'string', `${JSON.stringify(bad)} has a message`);
  }

  const s = await RawWamp.join(url, token);
  closers.push(() => s.close());
  const err = async (req: number): Promise<unknown[]> => s.next((m) => m[0] === 8 && m[2] === req);
  s.send([32, 1, {}, 'com..bad']);
  assert.equal((await err(1))[4], 'wamp.error.invalid_uri');
  s.send([32, 2, {}, 'wamp.session.on_join']);
  assert.equal((await err(2))[4], 'wamp.error.invalid_uri', 'wamp. is reserved');
  s.send([32, 3, { match: 'prefix' }, 'com']);
  assert.equal((await err(3))[4], 'wamp.error.option_not_allowed', 'only exact matching');
  s.send([34, 4, 12345]);
  assert.equal((await err(4))[4], 'wamp.error.no_such_subscription');
  s.send([66, 5, 12345]);
  assert.equal((await err(5))[4], 'wamp.error.no_such_registration');
  let deep: unknown = 'leaf';
  for (let i = 0; i < 33; i++) deep = [deep];
  s.send([16, 6, { acknowledge: true }, 'com.deep', [deep]]);
  const tooDeep = await err(6);
  assert.equal(tooDeep[4], 'wamp.error.invalid_argument');
  assert.equal((tooDeep[6] as { code: number }).code, 126, 'payload_too_deep at the door');
  s.send([48, 7, {}, 'com.deep.call', [deep]]);
  assert.equal((await err(7))[4], 'wamp.error.invalid_argument');
  // Subscribing twice answers with the same subscription.
  s.send([32, 8, {}, 'com.twice']);
  s.send([32, 9, {}, 'com.twice']);
  const [a1, a2] = [await s.next((m) => m[0] === 33 && m[1] === 8), await s.next((m) => m[0] === 33 && m[1] === 9)];
  assert.equal(a1[2], a2[2]);
  // GOODBYE is answered with goodbye_and_out.
  s.send([6, {}, 'wamp.close.close_realm']);
  assert.deepEqual(await s.next((m) => m[0] === 6), [6, {}, 'wamp.close.goodbye_and_out']);
  await s.waitClosed();

  // Far too deep for any payload: refused before being looked at.
  let absurd: unknown = 0;
  for (let i = 0; i < 200; i++) absurd = [absurd];
  p = await RawWamp.join(url, token);
  p.send([16, 1, {}, 'com.deep', [absurd]]);
  await aborted(p, 'wamp.error.protocol_violation');
  // A frame past max_message_size closes with 1009, as on every websocket path.
  p = await RawWamp.join(url, token);
  p.send([16, 1, {}, 'com.big', ['z'.repeat(70_000)]]);
  await p.waitClosed();
  assert.equal(p.closeCode, 1009);
  // No WAMP serializer Tidings speaks: the upgrade is refused.
  await assert.rejects(RawWamp.open(url, ['wamp.2.cbor']), /HTTP 400/);
  assert.ok((await metric(cluster.nodes[0]!.http, 'tidings_edge_wamp_aborts_total', { reason: 'wamp.error.protocol_violation' })) >= 9, 'aborts are counted by reason');
});

test('per-session limits: calls in flight, unanswered invocations, registrations (tidings.error.limit_exceeded)', async () => {
  const token = await ticket('limits');
  const callee = await RawWamp.join(wampUrl(0), token);
  const caller = await RawWamp.join(wampUrl(1), token);
  closers.push(() => callee.close(), () => caller.close());
  callee.send([64, 1, {}, 'com.limits.hang']); // never answered
  await callee.next((m) => m[0] === 65);
  for (let i = 1; i <= 1001; i++) caller.send([48, i, {}, 'com.limits.hang', [i]]);
  const refused = await caller.next((m) => m[0] === 8 && m[2] === 1001, 15000);
  assert.equal(refused[4], 'tidings.error.limit_exceeded');
  assert.match((refused[5] as string[])[0]!, /at most 1000 calls in flight per session/);
  await waitUntil(() => callee.messages.filter((m) => m[0] === 68).length === 1000, '1000 invocations reached the callee', 15000);
  assert.equal(caller.messages.filter((m) => m[0] === 8 || m[0] === 50).length, 0, 'the other 1000 are still in flight');
  // Another caller: the callee has 1000 invocations unanswered, its limit.
  const second = await RawWamp.join(wampUrl(0), token);
  closers.push(() => second.close());
  second.send([48, 1, {}, 'com.limits.hang']);
  const busy = await second.next((m) => m[0] === 8 && m[2] === 1);
  assert.equal(busy[4], 'tidings.error.limit_exceeded');
  assert.match((busy[5] as string[])[0]!, /the callee has 1000 invocations unanswered/);
  second.close();
  // The callee leaves: every call to it ends with wamp.error.canceled.
  callee.close();
  await waitUntil(() => caller.messages.filter((m) => m[0] === 8 && m[4] === 'wamp.error.canceled').length === 1000, '1000 canceled', 15000);
  for (let i = 1; i <= 1001; i++) caller.send([64, i + 2000, {}, `com.limits.p${i}`]);
  const tooMany = await caller.next((m) => m[0] === 8 && m[2] === 3001, 15000);
  assert.equal(tooMany[4], 'tidings.error.limit_exceeded');
  await waitUntil(() => caller.messages.filter((m) => m[0] === 65).length === 1000, '1000 registered', 15000);
  caller.close();
});

test('a WAMP session that stops reading is cut off as a slow consumer (4005); a healthy one gets everything', async () => {
  const token = await ticket('slow');
  const slow = await RawWamp.join(wampUrl(1), token);
  const healthy = await RawWamp.join(wampUrl(1), token);
  closers.push(() => healthy.close());
  for (const peer of [slow, healthy]) {
    peer.send([32, 1, {}, 'com.flood']);
    await peer.next((m) => m[0] === 33);
  }
  const before = await metric(cluster.nodes[1]!.http, 'tidings_edge_slow_consumers_total');
  (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const payload = 'y'.repeat(60000);
  // In steps the healthy session keeps up with (a loaded machine must not make it slow too).
  for (let i = 0; i < 120; i++) {
    const r = await postJson(`${cluster.nodes[0]!.http}/api/publish`, { channel: 'com.flood', data: { i, payload } });
    assert.equal(r.status, 200);
    if (i % 3 === 2) await waitUntil(() => healthy.messages.filter((m) => m[0] === 36).length === i + 1, `healthy got ${i + 1}`, 10000);
  }
  await waitUntil(async () => (await metric(cluster.nodes[1]!.http, 'tidings_edge_slow_consumers_total')) > before, 'slow consumer counted');
  (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  await slow.waitClosed();
  // The close frame queues behind what the socket could not send; past the 2 s grace the socket is cut (1006).
  assert.ok(slow.closeCode === 4005 || slow.closeCode === 1006, `closed (${slow.closeCode})`);
  assert.ok(slow.messages.filter((m) => m[0] === 36).length < 120, 'the slow session got only part');
});

test('kill -9 of the callee\'s node: the caller gets wamp.error.canceled; Autobahn reconnects the callee on the other node; a restarted director gets its registrations back', async () => {
  // The callee's transports: node 1 first, then node 2 (Autobahn cycles through them when one fails).
  await pyOpen('mover', [wampUrl(0), wampUrl(1)], 'json', 'mover', { max_retries: -1 });
  assert.equal((await py.request({ op: 'register', name: 'mover', procedure: 'com.mover.work', kind: 'sleep' })).ev, 'registered');
  const js = await openJsSession(autobahn, wampUrl(1), await ticket('waiting-caller'), 'msgpack');
  closers.push(() => js.connection.close());
  const pending = js.session.call('com.mover.work', [30]).then(
    (v: unknown) => ({ ok: v }),
    (e: any) => ({ error: e.error as string, args: e.args as unknown[] }),
  );
  await py.waitFor((e) => e.name === 'mover' && e.ev === 'invoked', 5000, 'the invocation reached the callee');
  const killedAt = Date.now();
  await cluster.nodes[0]!.proc.kill9();
  const outcome = await Promise.race([pending, new Promise<{ error: string }>((r) => setTimeout(() => r({ error: 'no answer within 10 s' }), 10_000))]);
  const detectedMs = Date.now() - killedAt;
  assert.equal(outcome.error, 'wamp.error.canceled', JSON.stringify(outcome));
  assert.ok(detectedMs < 6000, `canceled within presence_ttl (2 s) and its checks: ${detectedMs} ms`);
  // Autobahn's own reconnect: the component joins again on node 2 and registers again.
  const rejoin = await py.waitFor((e) => e.name === 'mover' && e.ev === 'join' && e.url === wampUrl(1), 15000, 'mover back on node 2');
  assert.ok(rejoin);
  await py.waitFor((e) => e.name === 'mover' && e.ev === 'registered' && e.req == null, 15000, 'registered again');
  assert.equal(await js.session.call('com.mover.work', [0]), 'slept');
  console.log(`# callee node killed: caller canceled after ${detectedMs} ms`);

  // The director restarts (state lost): the edge's periodic list brings the registration back.
  const d = cluster.director;
  await d.proc.stop();
  d.proc = serve('director-2', {
    TIDINGS_SERVER_HOST: '127.0.0.1',
    TIDINGS_SERVER_PORT: String(d.port),
    TIDINGS_EDGE_ENABLED: 'false',
    TIDINGS_SUBSCRIBER_ADDRESS: d.subscriber,
    TIDINGS_PUBLISHER_ADDRESS: d.publisher,
    TIDINGS_COMMAND_ADDRESS: d.command,
    TIDINGS_TOKEN_SECRET: TOKEN_SECRET,
    TIDINGS_API_KEYS: API_KEY,
    TIDINGS_NODE_ID: 'director',
    ...CLUSTER_ENV,
  });
  await d.proc.waitFor(/"msg":"node ready"/, 20000);
  const restartedAt = Date.now();
  let answer: unknown = null;
  while (Date.now() - restartedAt < 8000) {
    answer = await js.session.call('com.mover.work', [0]).catch((e: any) => e.error);
    if (answer === 'slept') break;
    assert.equal(answer, 'wamp.error.no_such_procedure', `until the edge's list arrives (got ${JSON.stringify(answer)} after ${Date.now() - restartedAt} ms)`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(answer, 'slept', 'the restarted director routes to the callee again');
  console.log(`# director restarted: registration back after ${Date.now() - restartedAt} ms`);
});

test('anonymous sessions only where allow_anonymous is on; realm and path are settings; a stopping node says goodbye', async () => {
  const url = `ws://127.0.0.1:${anon.port}/rt/router`;
  const p = await RawWamp.open(url);
  closers.push(() => p.close());
  p.send([1, 'com.app', { roles: { subscriber: {}, publisher: {}, caller: {} } }]);
  const welcome = await p.next((m) => m[0] === 2);
  assert.equal((welcome[2] as { authrole: string }).authrole, 'anonymous');
  assert.equal((welcome[2] as { authmethod: string }).authmethod, 'anonymous');
  assert.deepEqual(Object.keys((welcome[2] as { roles: object }).roles).sort(), ['broker', 'dealer']);
  p.send([32, 1, {}, 'public.news']);
  await p.next((m) => m[0] === 33 && m[1] === 1);
  p.send([32, 2, {}, 'private.news']);
  assert.equal((await p.next((m) => m[0] === 8 && m[2] === 2))[4], 'wamp.error.not_authorized', 'anonymous_channels only');
  p.send([16, 3, { acknowledge: true }, 'public.news', ['x']]);
  assert.equal((await p.next((m) => m[0] === 8 && m[2] === 3))[4], 'wamp.error.not_authorized', 'anonymous sessions never publish');
  p.send([48, 4, {}, 'com.any']);
  assert.equal((await p.next((m) => m[0] === 8 && m[2] === 4))[4], 'wamp.error.not_authorized', 'nor call');
  // A message published natively on that node reaches the anonymous subscriber.
  const r = await postJson(`${anon.http}/rt/api/publish`, { channel: 'public.news', data: 'for everyone' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const ev = await p.next((m) => m[0] === 36);
  assert.deepEqual(ev[4], ['for everyone']);
  const other = await RawWamp.open(url);
  other.send([1, 'realm1', { roles: { subscriber: {} } }]);
  assert.equal((await other.next((m) => m[0] === 3))[2], 'wamp.error.no_such_realm', 'only the configured realm');
  await assert.rejects(RawWamp.open(`ws://127.0.0.1:${anon.port}/rt/wamp`), /HTTP 404/, 'the default path is not served when wamp_path is set');
  // A node that stops tells its sessions: GOODBYE wamp.close.system_shutdown, then close 1001.
  await anon.stop();
  assert.deepEqual(await p.next((m) => m[0] === 6), [6, { message: 'the node is shutting down' }, 'wamp.close.system_shutdown']);
  await p.waitClosed();
  assert.equal(p.closeCode, 1001);
});

async function waitUntil(pred: () => boolean | Promise<boolean>, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
