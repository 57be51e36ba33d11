/**
 * channelstream 0.7.1 compatibility against a director + two forwarder nodes,
 * request by request and frame by frame. The expected shapes are read from
 * channelstream 0.7.1's source (its server views, schemas, channel, user,
 * connection and gc modules; commit 33381567 of Channelstream/channelstream);
 * the real server cannot run here (its gevent, ws4py, pyramid and
 * marshmallow 2 dependencies are not Debian packages), so they are encoded
 * here key set by key set. Requests are signed by Debian's
 * python3-itsdangerous and by channelstream's JS signing rules.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { postJson } from '../helpers/http.js';
import { startCluster, startSingleNode, type Cluster } from '../helpers/processes.js';
import { csRequest, pySigner, CsClient, listen } from '../helpers/channelstream.js';
import { jsSign } from '../helpers/cs-js-signer.js';
import { TestClient } from '../helpers/client.js';

const SECRET = 'channelstream-secret';
let cluster: Cluster;
const clients: CsClient[] = [];

before(async () => {
  cluster = await startCluster(2, 1, { TIDINGS_SECRET: SECRET, TIDINGS_PRESENCE_TTL: '5' });
});
after(async () => {
  for (const c of clients) c.close();
  pySigner.stop();
  await cluster?.stop();
});

/** A long-poll connection of the long-polling test, polled once more (quietly) while the last test starts its nodes. */
let quietPollId: string | null = null;

const cs = (base: string, path: string, body: unknown, method = 'POST') => csRequest(base, path, body, { secret: SECRET, method });
const keys = (o: object) => Object.keys(o).sort();
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$/;

// channelstream 0.7.1's key sets.
const CHAN_INFO = ['history', 'last_active', 'long_name', 'name', 'settings', 'total_connections', 'total_users', 'users', 'uuid'];
const SETTINGS = ['broadcast_presence_with_user_lists', 'history_size', 'notify_presence', 'notify_state', 'store_frames', 'store_history'];
const POSTED = ['channel', 'edited', 'exclude_users', 'message', 'no_history', 'pm_users', 'timestamp', 'user', 'uuid'];
const MESSAGE_FRAME = ['catchup', 'channel', 'edited', 'message', 'timestamp', 'type', 'user', 'uuid'];
const HISTORY_ENTRY = ['catchup', 'channel', 'edited', 'exclude_users', 'message', 'no_history', 'pm_users', 'timestamp', 'type', 'user', 'uuid'];
const PRESENCE = ['catchup', 'channel', 'message', 'state', 'timestamp', 'type', 'user', 'users', 'uuid'];
const STATE_CHANGE = ['catchup', 'channel', 'message', 'timestamp', 'type', 'user', 'uuid'];

async function open(url: string, connId: string): Promise<CsClient> {
  const c = await CsClient.open(url, connId);
  clients.push(c);
  return c;
}

/** Every frame but the heartbeat holds exactly one object, as channelstream sends them. */
function assertOneObjectPerFrame(c: CsClient): void {
  for (const f of c.frames) assert.ok(f.length <= 1, `frame of ${f.length} objects: ${JSON.stringify(f).slice(0, 300)}`);
}

test('signatures: Python itsdangerous and channelstream JS forms; path by default, any value with channelstream_signed_value=any', async () => {
  const base = cluster.nodes[0]!.http;
  const ok = await cs(base, '/info', undefined, 'GET');
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual(keys(ok.body), ['channels', 'users']);
  const cases: Array<[string, string]> = [
    ['wrong secret', await pySigner.sign('not-the-secret', '/info')],
    ['expired', await pySigner.sign(SECRET, '/info', -120)],
    ['future', await pySigner.sign(SECRET, '/info', 120)],
    ['garbage', 'not-a-signature'],
  ];
  for (const [what, token] of cases) {
    const r = await csRequest(base, '/info', undefined, { secret: SECRET, signed: token, method: 'GET' });
    assert.equal(r.status, 401, what);
    assert.equal(r.body.request, 'Bad Signature', what);
    assert.equal(r.body.error.code, 118, what);
  }
  // A valid signature of another value: refused by default, and the answer names the setting that restores channelstream's behaviour.
  for (const token of [await pySigner.sign(SECRET, '/connect'), jsSign(SECRET)]) {
    const r = await csRequest(base, '/info', undefined, { secret: SECRET, signed: token, method: 'GET' });
    assert.equal(r.status, 401);
    assert.equal(r.body.request, 'Bad Signature');
    assert.match(r.body.error.message, /channelstream_signed_value=any/);
  }
  assert.match(jsSign(SECRET).split('.')[1]!, /=$/, "the JS signer keeps one '=' of the timestamp's padding");
  const missing = await csRequest(base, '/info', undefined, { secret: SECRET, signed: null, method: 'GET' });
  assert.equal(missing.status, 403);
  assert.equal(missing.body.error.code, 103);
  const viaQuery = await fetch(`${base}/info?secret=${encodeURIComponent(await pySigner.sign(SECRET, '/info'))}`);
  assert.equal(viaQuery.status, 200);
});

test('the whole channelstream flow across two nodes, with channelstream 0.7.1 shapes exactly', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  // A channel name channelstream accepts and the native rules do not: spaces, #, non-ASCII.
  const chat = 'salon général #1';
  const a = await cs(cluster.director.http, '/connect', {
    username: 'alice',
    channels: [chat],
    fresh_user_state: { avatar: 'a.png', email: 'alice@example.org' },
    state_public_keys: ['avatar'],
    channel_configs: { [chat]: { notify_presence: true, store_history: true, history_size: 5 } },
    info: { include_history: false },
  });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.deepEqual(keys(a.body), ['channels', 'channels_info', 'conn_id', 'public_state', 'state', 'username']);
  assert.match(a.body.conn_id, UUID_RE);
  assert.deepEqual(a.body.channels, [chat]);
  assert.deepEqual(a.body.state, { avatar: 'a.png', email: 'alice@example.org' });
  assert.deepEqual(a.body.public_state, { avatar: 'a.png' });
  const info0 = a.body.channels_info.channels[chat];
  assert.deepEqual(keys(info0), CHAN_INFO);
  assert.deepEqual(keys(info0.settings), SETTINGS);
  assert.deepEqual(info0.settings, { notify_presence: true, store_history: true, history_size: 5, broadcast_presence_with_user_lists: false, notify_state: false, store_frames: true });
  assert.match(info0.uuid, UUID_RE);
  assert.match(info0.last_active, TIME_RE);
  assert.deepEqual(info0.users, ['alice']);
  assert.deepEqual(a.body.channels_info.users, [{ user: 'alice', state: { avatar: 'a.png', email: 'alice@example.org' } }]);
  const alice = await open(n2.url, a.body.conn_id);

  const bobId = '7A7CBC6A9AE54A8BBB0C7C5E6E4C9D21';
  const b = await cs(n1.http, '/connect', { username: 'bob', conn_id: bobId, channels: [chat], fresh_user_state: { avatar: 'b.png', phone: 'private-phone-1' }, state_public_keys: ['avatar'] });
  assert.equal(b.status, 200, JSON.stringify(b.body));
  assert.equal(b.body.conn_id, '7a7cbc6a-9ae5-4a8b-bb0c-7c5e6e4c9d21', 'conn_id written as Python writes a UUID');
  const bob = await open(n1.url, bobId);

  await alice.waitFor(() => alice.of('presence').some((p) => p.user === 'bob'), 5000, 'bob joined');
  const joined = alice.of('presence').find((p) => p.user === 'bob');
  assert.deepEqual(keys(joined), PRESENCE);
  assert.match(joined.uuid, UUID_RE);
  assert.deepEqual([joined.channel, joined.message, joined.state, joined.users, joined.catchup], [chat, { action: 'joined' }, { avatar: 'b.png' }, [], false]);
  assert.match(joined.timestamp, TIME_RE);

  // POST /message: the response items are the validated items (no type, no catchup, unknown keys dropped).
  const posted = await cs(n1.http, '/message', [{ channel: chat, user: 'bob', message: { text: 'hi' }, colour: 'blue', type: 'ignored' }, { user: 'bob', message: {} }]);
  assert.equal(posted.status, 200, JSON.stringify(posted.body));
  assert.equal(posted.body.length, 1, 'an item with neither channel nor pm_users is not sent (nor answered)');
  assert.deepEqual(keys(posted.body[0]), POSTED);
  assert.deepEqual([posted.body[0].edited, posted.body[0].pm_users, posted.body[0].exclude_users, posted.body[0].no_history], [null, [], [], false]);
  const uuid = posted.body[0].uuid;
  assert.match(uuid, UUID_RE);
  await alice.waitFor(() => alice.of('message').length === 1, 5000, 'message');
  const msg = alice.of('message')[0];
  assert.deepEqual(keys(msg), MESSAGE_FRAME);
  assert.deepEqual(msg, { channel: chat, uuid, timestamp: posted.body[0].timestamp, user: 'bob', message: { text: 'hi' }, edited: null, catchup: false, type: 'message' });
  await bob.waitFor(() => bob.of('message').length === 1, 5000, 'bob gets his own message');

  // exclude_users and pm_users in a channel; the last message proves alice's stream moved past the others.
  await cs(n1.http, '/message', [
    { channel: chat, user: 'bob', message: { t: 'not for alice' }, exclude_users: ['alice'], no_history: true },
    { channel: chat, user: 'bob', message: { t: 'private to alice' }, pm_users: ['alice'] },
    { channel: chat, user: 'bob', message: { t: 'for all' }, no_history: true },
  ]);
  await alice.waitFor(() => alice.of('message').some((m) => m.message.t === 'for all') && alice.of('message').some((m) => m.message.t === 'private to alice'), 5000, 'messages');
  await bob.waitFor(() => bob.of('message').some((m) => m.message.t === 'for all'), 5000, 'bob second message');
  assert.equal(alice.of('message').some((m) => m.message.t === 'not for alice'), false);
  assert.equal(bob.of('message').some((m) => m.message.t === 'not for alice'), true);
  assert.equal(bob.of('message').some((m) => m.message.t === 'private to alice'), false);

  // PATCH and DELETE: responses and frames carry only what channelstream's do.
  const edit = await cs(n2.http, '/message', [{ uuid, channel: chat, message: { text: 'hi!' } }], 'PATCH');
  assert.equal(edit.status, 200, JSON.stringify(edit.body));
  assert.deepEqual(keys(edit.body[0]), ['channel', 'edited', 'exclude_users', 'message', 'no_history', 'pm_users', 'uuid']);
  await alice.waitFor(() => alice.of('message:edit').length === 1, 5000, 'edit');
  assert.deepEqual(alice.of('message:edit')[0], { channel: chat, uuid, message: { text: 'hi!' }, edited: edit.body[0].edited, type: 'message:edit' });

  // History on the server API keeps the delivery keys and the private message (the caller filters it for browsers).
  const info = await cs(n1.http, '/info', { info: { channels: [chat] } });
  assert.equal(info.status, 200);
  assert.deepEqual(info.body.channels[chat].users, ['alice', 'bob']);
  const history = info.body.channels[chat].history;
  assert.deepEqual(history.map((h: any) => h.message), [{ text: 'hi!' }, { t: 'private to alice' }], 'edited, and the private one, not the no_history ones');
  for (const h of history) assert.deepEqual(keys(h), HISTORY_ENTRY);
  assert.deepEqual(history[1].pm_users, ['alice']);
  assert.equal(history[0].edited, edit.body[0].edited);

  const del = await cs(n2.http, '/message', [{ uuid, channel: chat }], 'DELETE');
  assert.equal(del.status, 200, JSON.stringify(del.body));
  assert.deepEqual(keys(del.body[0]), ['channel', 'exclude_users', 'no_history', 'pm_users', 'uuid']);
  await alice.waitFor(() => alice.of('message:delete').length === 1, 5000, 'delete');
  assert.deepEqual(alice.of('message:delete')[0], { channel: chat, uuid, type: 'message:delete' });
  const afterDelete = await cs(n1.http, '/info', { info: { channels: [chat], include_users: false } });
  assert.deepEqual(afterDelete.body.channels[chat].history.map((h: any) => h.message), [{ t: 'private to alice' }]);
  assert.deepEqual([afterDelete.body.channels[chat].users, afterDelete.body.channels[chat].total_users, afterDelete.body.channels[chat].total_connections], [[], 0, 2], 'total_users counts the users listed');
  assert.deepEqual((await cs(n1.http, '/info', { info: { channels: [] } })).body, { channels: {}, users: [] });
  const noInfo = await cs(n1.http, '/info', {});
  assert.equal(noInfo.status, 422);
  assert.deepEqual(noInfo.body.info, ['Missing data for required field.']);

  // /channel_config resets the keys left out to their defaults.
  const cfg = await cs(n2.http, '/channel_config', { [chat]: { notify_state: true, notify_presence: true } });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.body));
  assert.deepEqual(keys(cfg.body), ['channels', 'users']);
  assert.deepEqual(cfg.body.channels[chat].settings, { notify_presence: true, store_history: false, history_size: 10, broadcast_presence_with_user_lists: false, notify_state: true, store_frames: true });
  assert.deepEqual([cfg.body.channels[chat].history, cfg.body.channels[chat].users, cfg.body.channels[chat].total_users], [[], [], 0]);

  const st = await cs(n1.http, '/user_state', { user: 'bob', user_state: { avatar: 'b2.png', phone: 'private-phone-2' } });
  assert.equal(st.status, 200, JSON.stringify(st.body));
  assert.deepEqual(st.body, { user_state: { avatar: 'b2.png', phone: 'private-phone-2' }, changed_state: [{ key: 'avatar', value: 'b2.png' }, { key: 'phone', value: 'private-phone-2' }], public_keys: ['avatar'] });
  await alice.waitFor(() => alice.of('user_state_change').length === 1, 5000, 'state change');
  const change = alice.of('user_state_change')[0];
  assert.deepEqual(keys(change), STATE_CHANGE);
  assert.deepEqual(change.message, { state: { avatar: 'b2.png' }, changed: [{ key: 'avatar', value: 'b2.png' }] });
  assert.equal(JSON.stringify(alice.items).includes('private-phone'), false, 'private state never reaches other clients');

  // /subscribe through another node than the one holding alice, then a message at once: it arrives (nothing is lost while the edge joins).
  const sub = await cs(n1.http, '/subscribe', { conn_id: a.body.conn_id, channels: ['news'] });
  assert.equal(sub.status, 200, JSON.stringify(sub.body));
  assert.deepEqual(keys(sub.body), ['channels', 'channels_info', 'subscribed_to']);
  assert.deepEqual(sub.body.subscribed_to, ['news']);
  assert.deepEqual(sub.body.channels, ['news', chat]);
  await cs(n1.http, '/message', [{ channel: 'news', user: 'system', message: { t: 'extra' } }]);
  await alice.waitFor(() => alice.of('message').some((m) => m.message.t === 'extra'), 5000, 'message right after /subscribe');
  await cs(n1.http, '/message', [{ pm_users: ['alice'], channel: 'elsewhere', user: 'system', message: { t: 'not in that channel' } }, { pm_users: ['alice'], user: 'system', message: { t: 'pm' } }]);
  // Both go down alice's user topic in this order: once 'pm' is here, the other would have been too.
  await alice.waitFor(() => alice.of('message').some((m) => m.message.t === 'pm'), 5000, 'private message');
  assert.equal(alice.of('message').some((m) => m.message.t === 'not in that channel'), false);
  assert.equal(alice.of('message').find((m) => m.message.t === 'pm').channel, null);
  const unsub = await cs(n1.http, '/unsubscribe', { conn_id: a.body.conn_id, channels: ['news', 'never-joined'] });
  assert.deepEqual([unsub.body.unsubscribed_from, unsub.body.channels], [['news'], [chat]]);

  // 422 bodies, nested as channelstream's.
  const bad = await cs(n1.http, '/message', [{ channel: chat, user: 'u', message: {} }, { channel: 'x'.repeat(257), message: 'text' }]);
  assert.equal(bad.status, 422);
  assert.deepEqual(bad.body['1'], { channel: ['Length must be between 1 and 256.'], user: ['Missing data for required field.'], message: ['Not a valid mapping type.'] });
  assert.equal(bad.body.error.code, 116);
  const unknownConn = await cs(n1.http, '/subscribe', { conn_id: '00000000-0000-4000-8000-000000000000', channels: ['x'] });
  assert.deepEqual([unknownConn.status, unknownConn.body.conn_id], [422, ['Unknown connection']]);
  const notUuid = await cs(n1.http, '/subscribe', { conn_id: 'node1/e0.abc', channels: ['x'] });
  assert.deepEqual([notUuid.status, notUuid.body.conn_id], [422, ['Not a valid UUID.']]);
  const unknownUser = await cs(n1.http, '/user_state', { user: 'nobody', user_state: {} });
  assert.deepEqual([unknownUser.status, unknownUser.body.user], [422, ['Unknown user']]);

  // Heartbeat: an empty array every 5 s. Every other frame holds one object.
  await alice.waitFor(() => alice.frames.some((f) => f.length === 0), 6500, 'heartbeat []');
  assertOneObjectPerFrame(alice);

  // /disconnect: true, the websocket closes with 1000, bob parts; again: false.
  const d = await cs(n2.http, '/disconnect', { conn_id: bobId });
  assert.deepEqual([d.status, d.body], [200, true]);
  await bob.waitClosed();
  assert.equal(bob.closeCode, 1000);
  await alice.waitFor(() => alice.of('presence').some((p) => p.message.action === 'parted' && p.user === 'bob'), 5000, 'bob parted');
  assert.equal(alice.of('presence').find((p) => p.message.action === 'parted').state, null);
  const again = await cs(n2.http, '/disconnect', { conn_id: bobId });
  assert.equal(again.body, false);
});

test('names up to 256 and 512 characters travel end to end; the native protocol keeps its stricter channel rule', async () => {
  const node = cluster.nodes[0]!;
  const channel = `${'é'.repeat(250)} #*\u{1F600}`;
  const user = `u ${'x'.repeat(510)}`;
  const r = await cs(node.http, '/connect', { username: user, channels: [channel] });
  assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
  const c = await open(node.url, r.body.conn_id);
  const sent = await cs(cluster.director.http, '/message', [{ channel, user, message: { n: 1 } }]);
  assert.equal(sent.status, 200);
  await c.waitFor(() => c.of('message').length === 1, 5000, 'message on a wide channel name');
  assert.deepEqual([c.of('message')[0].channel, c.of('message')[0].user], [channel, user]);
  const tooLong = await cs(node.http, '/connect', { username: 'u', channels: ['x'.repeat(257)] });
  assert.deepEqual(tooLong.body.channels, { '0': ['Length must be between 1 and 256.'] });
  const native = await TestClient.connect(node.url, 'nate');
  assert.equal((await native.request('subscribe', { channel })).error?.code, 105, 'native clients name channels with the native rule');
  native.close();
});

test('catch-up: a websocket that attaches later gets every frame since, one per frame, of every type', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const ch = 'catchup-room';
  const r = await cs(n1.http, '/connect', { username: 'carl', channels: [ch], state_public_keys: ['mood'], channel_configs: { [ch]: { notify_presence: true, notify_state: true } } });
  const id = r.body.conn_id as string;
  // Before carl's websocket exists: a message (the channel keeps no history), a no_history one, dora's arrival,
  // dora's state change, a private message to carl and one he is excluded from.
  await cs(n2.http, '/message', [{ channel: ch, user: 'sys', message: { n: 1 } }, { channel: ch, user: 'sys', message: { n: 2 }, no_history: true }]);
  const dora = await cs(n2.http, '/connect', { username: 'dora', channels: [ch], state_public_keys: ['mood'] });
  await cs(n2.http, '/user_state', { user: 'dora', user_state: { mood: 'happy' } });
  await cs(n1.http, '/message', [{ pm_users: ['carl'], user: 'sys', message: { n: 3 } }, { channel: ch, user: 'sys', message: { n: 4 }, exclude_users: ['carl'] }]);
  const carl = await open(n2.url, id);
  await carl.waitFor(() => carl.items.length >= 5, 5000, 'catch-up');
  const [m1, m2, joined, stateChange, pm] = carl.items;
  assert.deepEqual([m1.message, m2.message, joined.type, joined.user, stateChange.type, pm.message], [{ n: 1 }, { n: 2 }, 'presence', 'dora', 'user_state_change', { n: 3 }]);
  for (const item of [m1, m2, joined, stateChange, pm]) assert.equal(item.catchup, true, JSON.stringify(item));
  assert.deepEqual(keys(m1), MESSAGE_FRAME);
  assert.deepEqual(keys(joined), PRESENCE);
  assert.equal(carl.frames.filter((f) => f.length > 0).length, carl.items.length, 'one object per frame');
  // Live again: catchup false, and nothing replayed twice.
  await cs(n1.http, '/message', [{ channel: ch, user: 'sys', message: { n: 5 } }]);
  await carl.waitFor(() => carl.of('message').some((m) => m.message.n === 5), 5000, 'live');
  assert.equal(carl.of('message').find((m) => m.message.n === 5).catchup, false);
  assert.deepEqual(carl.of('message').map((m) => m.message.n), [1, 2, 3, 5]);

  // Closed without /disconnect, back within the reattach window on the other node: what happened meanwhile, then live.
  carl.close();
  await carl.waitClosed();
  let away = (await postJson(`${n1.http}/api/connections/info`, { conn_id: id })).body;
  for (let i = 0; i < 100 && away.edge !== null; i++) {
    await new Promise((res) => setTimeout(res, 5));
    away = (await postJson(`${n1.http}/api/connections/info`, { conn_id: id })).body;
  }
  assert.equal(away.edge, null, 'no node holds it while its client is away');
  await cs(n1.http, '/message', [{ channel: ch, user: 'sys', message: { n: 6 } }]);
  // Another client holds the channel live on node1, and messages keep coming while carl comes back there:
  // each reaches him exactly once, in order (kept ones first), none lost at the seam.
  const ivy = await cs(n1.http, '/connect', { username: 'ivy', channels: [ch] });
  await open(n1.url, ivy.body.conn_id);
  const sent: number[] = [6];
  let posting = true;
  const publisher = (async () => {
    for (let n = 100; posting && n < 400; n++) {
      await cs(n2.http, '/message', [{ channel: ch, user: 'sys', message: { n } }]);
      sent.push(n);
    }
  })();
  await new Promise((res) => setTimeout(res, 150));
  const back = await open(n1.url, id);
  await new Promise((res) => setTimeout(res, 300));
  posting = false;
  await publisher;
  await back.waitFor(() => back.of('message').length >= sent.length, 5000, 'catch-up after reattach');
  assert.deepEqual(back.of('message').map((m) => m.message.n), sent, 'every message once, in order');
  assert.deepEqual([back.of('message')[0].message, back.of('message')[0].catchup], [{ n: 6 }, true]);
  console.log(`# ${sent.length} messages across the reattach, ${back.of('message').filter((m) => m.catchup).length} of them caught up`);
  const held = (await postJson(`${n2.http}/api/connections/info`, { conn_id: id })).body;
  assert.deepEqual([held.registered, typeof held.edge], [true, 'string'], 'the same registered connection, held again');

  // The same conn_id opened twice on one node: the newest receives, the older is closed with 1000.
  const newer = await open(n1.url, id);
  await back.waitClosed();
  assert.deepEqual([back.closeCode, back.closeReason], [1000, 'replaced by a newer connection']);
  await cs(n2.http, '/message', [{ channel: ch, user: 'sys', message: { n: 7 } }]);
  await newer.waitFor(() => newer.of('message').some((m) => m.message.n === 7), 5000, 'newest receives');
  // The older one's close is not the connection's: past the reattach window carl is still there.
  await new Promise((res) => setTimeout(res, 1500));
  const still = (await postJson(`${n2.http}/api/presence`, { channel: ch })).body;
  assert.deepEqual(still.users.find((u: any) => u.user === 'carl')?.connections, [id], 'carl is still present');
  // ... and on another node.
  const newest = await open(n2.url, id);
  await newer.waitClosed();
  assert.equal(newer.closeCode, 1000);
  await cs(n2.http, '/message', [{ channel: ch, user: 'sys', message: { n: 8 } }]);
  await newest.waitFor(() => newest.of('message').some((m) => m.message.n === 8), 5000, 'newest receives');
  const presence = (await postJson(`${n2.http}/api/presence`, { channel: ch })).body;
  assert.deepEqual(presence.users.find((u: any) => u.user === 'carl').connections, [id], 'one connection for carl');
  assertOneObjectPerFrame(newest);

  // A websocket closed without /disconnect parts within about a second (reattach_window 1 s).
  const watcher = await cs(n1.http, '/connect', { username: 'erin', channels: [ch] });
  const erin = await open(n1.url, watcher.body.conn_id);
  const closedAt = Date.now();
  newest.close();
  await erin.waitFor(() => erin.of('presence').some((p) => p.user === 'carl' && p.message.action === 'parted'), 5000, 'carl parted');
  const partedAfter = Date.now() - closedAt;
  console.log(`# parted ${partedAfter} ms after the websocket closed`);
  assert.ok(partedAfter < 2500, `parted after ${partedAfter} ms`);
  assert.equal(dora.status, 200);
});

test('websocket lifecycle: an unknown or malformed conn_id is upgraded then closed with 1000', async () => {
  for (const id of ['00000000-0000-4000-8000-000000000000', 'no-such-connection']) {
    const c = await CsClient.open(cluster.nodes[0]!.url, id);
    await c.waitClosed();
    assert.equal(c.closeCode, 1000, id);
  }
});

test('browser routes: unsigned /disconnect?conn_id=, CORS and OPTIONS on every route', async () => {
  const node = cluster.nodes[1]!;
  const r = await cs(node.http, '/connect', { username: 'fay', channels: ['x'] });
  const pre = await fetch(`${node.http}/disconnect`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 200);
  assert.equal(await pre.text(), '');
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.equal(pre.headers.get('access-control-allow-methods'), 'GET, POST, OPTIONS, PUT, DELETE, PATCH');
  assert.equal(pre.headers.get('access-control-max-age'), '86400');
  assert.equal(pre.headers.get('xdomainrequestallowed'), '1');
  const unsigned = await fetch(`${node.http}/disconnect?conn_id=${r.body.conn_id}`, { headers: { origin: 'https://app.example' } });
  assert.deepEqual([unsigned.status, await unsigned.json(), unsigned.headers.get('access-control-allow-origin')], [200, true, '*']);
  const twice = await fetch(`${node.http}/disconnect?conn_id=${r.body.conn_id}`);
  assert.equal(await twice.json(), false);
  const malformed = await fetch(`${node.http}/disconnect?conn_id=nope`);
  assert.deepEqual([malformed.status, ((await malformed.json()) as any).conn_id], [422, ['Not a valid UUID.']]);
  // Signed routes answer with CORS headers too, errors included.
  const err = await csRequest(node.http, '/info', undefined, { secret: SECRET, signed: 'bad', method: 'GET' });
  assert.equal(err.headers.get('access-control-allow-origin'), '*');
});

test('long polling: /listen catches up, then carries live frames; the connection survives between polls', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const r = await cs(n1.http, '/connect', { username: 'gus', channels: ['poll-room'] });
  const id = r.body.conn_id as string;
  await cs(n2.http, '/message', [{ channel: 'poll-room', user: 'sys', message: { n: 1 } }, { pm_users: ['gus'], user: 'sys', message: { n: 2 } }]);
  const first = await listen(n2.http, id);
  assert.equal(first.status, 200, first.text);
  assert.equal(first.headers.get('access-control-allow-origin'), '*');
  assert.deepEqual(first.body.map((m: any) => [m.message.n, m.catchup]), [[1, true], [2, true]]);
  assert.ok(first.ms < 4500, `answered after ${first.ms} ms, before the 5 s wake: items were there`);
  // Between polls nothing is lost: posted now, answered by the next poll on the other node.
  await cs(n2.http, '/message', [{ channel: 'poll-room', user: 'sys', message: { n: 3 } }]);
  const second = await listen(n1.http, id, '&callback=cb.got');
  assert.equal(second.headers.get('content-type'), 'application/javascript; charset=utf-8');
  assert.match(second.text, /^cb\.got\(\[/);
  assert.deepEqual(JSON.parse(second.text.slice('cb.got('.length, -1)).map((m: any) => m.message.n), [3]);
  // A live frame during a poll, and the empty answer of a quiet poll, side by side with a websocket's heartbeat.
  const live = listen(n2.http, id);
  await new Promise((res) => setTimeout(res, 300));
  await cs(n1.http, '/message', [{ channel: 'poll-room', user: 'sys', message: { n: 4 } }]);
  const got = await live;
  assert.deepEqual(got.body.map((m: any) => [m.message.n, m.catchup]), [[4, false]]);
  quietPollId = id;
  const info = await cs(n1.http, '/info', { info: { channels: ['poll-room'] } });
  assert.deepEqual(info.body.channels['poll-room'].users, ['gus'], 'present between polls');
  const unknown = await listen(n1.http, '00000000-0000-4000-8000-000000000000');
  assert.deepEqual([unknown.status, unknown.body.error.code], [401, 180]);
  const malformed = await listen(n1.http, 'nope');
  assert.deepEqual([malformed.status, malformed.body], [422, ['Wrong UUID format']]);
  const badCallback = await listen(n1.http, id, '&callback=%3Cscript%3E');
  assert.equal(badCallback.status, 400);
});

test('single nodes: allow_posting_from, channelstream_signed_value=any (its JS signer and demo), an allow_cors list, catchup_max_bytes; a quiet long poll meanwhile', async () => {
  // While the nodes start: a long poll with nothing to carry answers [] after 5 s (channelstream's wake_connections_after).
  assert.ok(quietPollId, 'the long-polling test ran');
  const quietPoll = listen(cluster.nodes[0]!.http, quietPollId);
  const anyValue = await startSingleNode({
    TIDINGS_SECRET: SECRET,
    TIDINGS_ALLOW_POSTING_FROM: '127.0.0.1',
    TIDINGS_CHANNELSTREAM_SIGNED_VALUE: 'any',
    TIDINGS_ALLOW_CORS: 'app.example',
    TIDINGS_CATCHUP_MAX_BYTES: '2048',
  });
  const denied = await startSingleNode({ TIDINGS_SECRET: SECRET, TIDINGS_ALLOW_POSTING_FROM: '10.1.2.3' });
  try {
    const js = await csRequest(anyValue.http, '/info', undefined, { secret: SECRET, signed: jsSign(SECRET), method: 'GET' });
    assert.equal(js.status, 200, JSON.stringify(js.body));
    const demo = await csRequest(anyValue.http, '/connect', { username: 'demo' }, { secret: SECRET, signed: await pySigner.sign(SECRET, 'channelstream') });
    assert.equal(demo.status, 200, "channelstream's demo signs 'channelstream'");
    const expired = await csRequest(anyValue.http, '/info', undefined, { secret: SECRET, signed: jsSign(SECRET, Math.floor(Date.now() / 1000) - 120), method: 'GET' });
    assert.equal(expired.status, 401, 'any value, but still signed and fresh');
    const cors = async (origin: string) => (await fetch(`${anyValue.http}/info`, { method: 'OPTIONS', headers: { origin } })).headers.get('access-control-allow-origin');
    assert.equal(await cors('https://app.example'), 'https://app.example');
    assert.equal(await cors('https://www.app.example'), 'https://www.app.example');
    assert.equal(await cors('https://app.example.evil.net'), null, 'channelstream matched any origin containing the text; Tidings does not');
    // More frames than catchup_max_bytes while hal is away: hal is dropped (parted, unknown), not trimmed silently.
    const sign = (path: string) => pySigner.sign(SECRET, path);
    const hal = await csRequest(anyValue.http, '/connect', { username: 'hal', channels: ['flood'] }, { secret: SECRET, signed: await sign('/connect') });
    const big = { channel: 'flood', user: 'sys', message: { text: 'x'.repeat(500) } }; // about 800 bytes a push
    await csRequest(anyValue.http, '/message', [big, big], { secret: SECRET, signed: await sign('/message') });
    const kept = await csRequest(anyValue.http, '/info', { info: { channels: ['flood'] } }, { secret: SECRET, signed: await sign('/info') });
    assert.deepEqual(kept.body.channels.flood.users, ['hal'], 'within the bound');
    await csRequest(anyValue.http, '/message', [big], { secret: SECRET, signed: await sign('/message') });
    const gone = await csRequest(anyValue.http, '/info', { info: { channels: ['flood'] } }, { secret: SECRET, signed: await sign('/info') });
    assert.deepEqual(gone.body.channels.flood?.users ?? [], [], 'past catchup_max_bytes the connection is dropped');
    const late = await CsClient.open(anyValue.url, hal.body.conn_id);
    await late.waitClosed();
    assert.equal(late.closeCode, 1000, 'its client is told the connection is gone');
    const r = await cs(denied.http, '/info', undefined, 'GET');
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 119);
    const quiet = await quietPoll;
    assert.deepEqual([quiet.status, quiet.body], [200, []]);
    assert.ok(quiet.ms >= 4900 && quiet.ms < 10_000, `empty answer after ${quiet.ms} ms`);
  } finally {
    await Promise.all([anyValue.stop(), denied.stop()]);
  }
});

