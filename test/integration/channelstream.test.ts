/**
 * channelstream compatibility against a director + two forwarder nodes:
 * requests signed by Python itsdangerous, bad signatures rejected, a conn_id
 * registered on one node used on another, arrays of channelstream objects
 * (message, presence, user_state_change, edit, delete) and the heartbeat.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { postJson } from '../helpers/http.js';
import { startCluster, startSingleNode, type Cluster } from '../helpers/processes.js';
import { csRequest, pySign, CsClient } from '../helpers/channelstream.js';
import { TestClient } from '../helpers/client.js';
import { API_KEY } from '../helpers/processes.js';

const SECRET = 'channelstream-secret';
let cluster: Cluster;
const clients: CsClient[] = [];

before(async () => {
  cluster = await startCluster(2, 1, { TIDINGS_SECRET: SECRET, TIDINGS_PRESENCE_TTL: '5' });
});
after(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
});

const cs = (base: string, path: string, body: unknown, method = 'POST') => csRequest(base, path, body, { secret: SECRET, method });

/**
 * A channelstream websocket has no "subscribed" signal: post to the channel
 * every 250 ms (at most 20 times) until the client has a message from it.
 */
async function postUntilReceived(base: string, client: CsClient, channel: string, text: string): Promise<void> {
  const got = () => client.of('message').filter((m) => m.channel === channel && m.message === text).length > 0;
  for (let i = 0; i < 20 && !got(); i++) {
    const r = await cs(base, '/message', [{ channel, user: 'system', message: text }]);
    assert.equal(r.status, 200);
    await client.waitFor(got, 250, text).catch(() => undefined);
  }
  assert.ok(got(), `${text} reached the client`);
}

test('a Python-signed request is accepted; wrong path, wrong secret, expired and future signatures are not', async () => {
  const base = cluster.nodes[0]!.http;
  const ok = await cs(base, '/info', {});
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual(Object.keys(ok.body).sort(), ['channels', 'users']);
  const cases: Array<[string, string]> = [
    ['wrong path', pySign(SECRET, '/connect')],
    ['wrong secret', pySign('not-the-secret', '/info')],
    ['expired', pySign(SECRET, '/info', -120)],
    ['future', pySign(SECRET, '/info', 120)],
    ['garbage', 'not-a-signature'],
  ];
  for (const [what, token] of cases) {
    const r = await csRequest(base, '/info', {}, { secret: SECRET, signed: token });
    assert.equal(r.status, 401, what);
    assert.equal(r.body.request, 'Bad Signature', what);
    assert.equal(r.body.error.code, 118, what);
  }
  const missing = await csRequest(base, '/info', {}, { secret: SECRET, signed: null });
  assert.equal(missing.status, 403);
  assert.equal(missing.body.error.code, 103);
  // ?secret= works as the header does.
  const viaQuery = await fetch(`${base}/info?secret=${encodeURIComponent(pySign(SECRET, '/info'))}`, { method: 'POST' });
  assert.equal(viaQuery.status, 200);
  const invalid = await cs(base, '/connect', { channels: ['x'] });
  assert.equal(invalid.status, 422);
  assert.deepEqual(invalid.body.username, ['Missing data for required field.']);
  assert.equal(invalid.body.error.code, 116);
});

test('connect on one node, /ws?conn_id= on another: arrays of messages, presence, state changes, edits, deletes', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const a = await cs(cluster.director.http, '/connect', {
    username: 'alice',
    channels: ['chat'],
    fresh_user_state: { avatar: 'a.png', email: 'alice@example.org' },
    state_public_keys: ['avatar'],
    channel_configs: { chat: { notify_presence: true, store_history: true, history_size: 5 } },
    info: { include_history: false },
  });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(a.body.username, 'alice');
  assert.deepEqual(a.body.channels, ['chat']);
  assert.deepEqual(a.body.state, { avatar: 'a.png', email: 'alice@example.org' });
  assert.deepEqual(a.body.public_state, { avatar: 'a.png' });
  assert.equal(a.body.channels_info.channels.chat.settings.notify_presence, true);
  assert.equal(a.body.channels_info.channels.chat.settings.history_size, 5);
  assert.deepEqual(a.body.channels_info.channels.chat.users, ['alice']);
  const alice = await CsClient.open(n2.url, a.body.conn_id);
  clients.push(alice);
  // A native client in the same channel sees the same events in the native shape.
  const native = await TestClient.connect(n1.url, 'nate');
  await native.call('subscribe', { channel: 'chat' });

  const b = await cs(n1.http, '/connect', { username: 'bob', conn_id: '7a7cbc6a-9ae5-4a8b-bb0c-7c5e6e4c9d21', channels: ['chat'], fresh_user_state: { avatar: 'b.png', phone: 'private-phone-1' }, state_public_keys: ['avatar'] });
  assert.equal(b.status, 200, JSON.stringify(b.body));
  assert.equal(b.body.conn_id, '7a7cbc6a-9ae5-4a8b-bb0c-7c5e6e4c9d21');
  const bob = await CsClient.open(n1.url, b.body.conn_id);
  clients.push(bob);

  const bobPresence = () => alice.of('presence').filter((p) => p.user === 'bob');
  // nate's join is reported by his edge, bob's by /connect: they may arrive in either order.
  await alice.waitFor(() => bobPresence().length === 1 && alice.of('presence').some((p) => p.user === 'nate'), 5000, 'bob and nate joined');
  assert.deepEqual(alice.of('presence').map((p) => p.user).sort(), ['bob', 'nate'], 'one join each');
  const joined = bobPresence()[0];
  assert.equal(joined.user, 'bob');
  assert.equal(joined.channel, 'chat');
  assert.deepEqual(joined.message, { action: 'joined' });
  assert.deepEqual(joined.state, { avatar: 'b.png' }, 'only public keys');
  assert.equal(joined.catchup, false);
  assert.match(joined.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);

  const posted = await cs(n1.http, '/message', [{ channel: 'chat', user: 'bob', message: { text: 'hi' }, colour: 'blue' }]);
  assert.equal(posted.status, 200, JSON.stringify(posted.body));
  assert.equal(posted.body.length, 1);
  const uuid = posted.body[0].uuid;
  await alice.waitFor(() => alice.of('message').length === 1, 5000, 'message');
  const msg = alice.of('message')[0];
  assert.deepEqual(
    { uuid: msg.uuid, user: msg.user, channel: msg.channel, message: msg.message, colour: msg.colour, edited: msg.edited, catchup: msg.catchup },
    { uuid, user: 'bob', channel: 'chat', message: { text: 'hi' }, colour: 'blue', edited: null, catchup: false },
  );
  assert.equal('pm_users' in msg, false);
  assert.equal('exclude_users' in msg, false);
  await bob.waitFor(() => bob.of('message').length === 1, 5000, 'bob gets his own message');
  // exclude_users: skipped for alice, delivered to bob; the next message proves alice's stream moved past it.
  await cs(n1.http, '/message', [{ channel: 'chat', user: 'bob', message: 'not for alice', exclude_users: ['alice'], no_history: true }, { channel: 'chat', user: 'bob', message: 'for all', no_history: true }]);
  await alice.waitFor(() => alice.of('message').some((m) => m.message === 'for all'), 5000, 'second message');
  await bob.waitFor(() => bob.of('message').some((m) => m.message === 'for all'), 5000, 'bob second message');
  assert.equal(alice.of('message').some((m) => m.message === 'not for alice'), false);
  assert.equal(bob.of('message').some((m) => m.message === 'not for alice'), true);

  const edit = await cs(n2.http, '/message', [{ uuid, channel: 'chat', message: { text: 'hi!' } }], 'PATCH');
  assert.equal(edit.status, 200, JSON.stringify(edit.body));
  await alice.waitFor(() => alice.of('message:edit').length === 1, 5000, 'edit');
  assert.deepEqual(alice.of('message:edit')[0].message, { text: 'hi!' });
  const info = await cs(n1.http, '/info', { info: { channels: ['chat'], include_history: true, include_users: true } });
  assert.equal(info.status, 200);
  assert.deepEqual(info.body.channels.chat.users, ['alice', 'bob', 'nate'], 'channelstream and native users alike');
  assert.equal(info.body.channels.chat.total_connections, 3);
  assert.deepEqual(info.body.channels.chat.history.map((h: any) => h.message), [{ text: 'hi!' }], 'history holds the edited message');

  const del = await cs(n2.http, '/message', [{ uuid, channel: 'chat' }], 'DELETE');
  assert.equal(del.status, 200, JSON.stringify(del.body));
  await alice.waitFor(() => alice.of('message:delete').length === 1, 5000, 'delete');
  assert.equal(alice.of('message:delete')[0].uuid, uuid);
  const afterDelete = await cs(n1.http, '/info', { info: { channels: ['chat'], include_history: true } });
  assert.deepEqual(afterDelete.body.channels.chat.history, [], 'a deleted message leaves the history');
  const nativeHistory = await native.call('history', { channel: 'chat', limit: 10 });
  const stored = nativeHistory.messages.find((m: any) => m.data?.uuid === uuid);
  assert.deepEqual(stored.data, { uuid, deleted: true }, 'native history keeps the offset as a tombstone without the text');

  const cfg = await cs(n2.http, '/channel_config', { chat: { notify_state: true } });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.body));
  assert.equal(cfg.body.channels.chat.settings.notify_state, true);
  assert.equal(cfg.body.channels.chat.settings.notify_presence, true, 'other keys kept');
  const st = await cs(n1.http, '/user_state', { user: 'bob', user_state: { avatar: 'b2.png', phone: 'private-phone-2' } });
  assert.equal(st.status, 200, JSON.stringify(st.body));
  assert.deepEqual(st.body.user_state, { avatar: 'b2.png', phone: 'private-phone-2' });
  assert.deepEqual(st.body.changed_state, [{ key: 'avatar', value: 'b2.png' }, { key: 'phone', value: 'private-phone-2' }]);
  assert.deepEqual(st.body.public_keys, ['avatar']);
  await alice.waitFor(() => alice.of('user_state_change').length === 1, 5000, 'state change');
  const change = alice.of('user_state_change')[0];
  assert.deepEqual(change.message, { state: { avatar: 'b2.png' }, changed: [{ key: 'avatar', value: 'b2.png' }] });
  assert.equal(JSON.stringify(alice.items).includes('private-phone'), false, 'private state never reaches other clients');
  await native.waitFor(() => native.pushes.some((p) => p.type === 'state'), 5000, 'native state push');
  const nstate = native.pushes.find((p) => p.type === 'state')!;
  assert.deepEqual([nstate.user, nstate.state, nstate.changed], ['bob', { avatar: 'b2.png' }, [{ key: 'avatar', value: 'b2.png' }]]);
  assert.equal(native.messages('chat')[0]?.sender, 'bob');
  assert.deepEqual((native.messages('chat')[0]?.data as any).message, { text: 'hi' }, 'native data is the channelstream object');
  const np = await fetch(`${n2.http}/api/presence`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ channel: 'chat' }) });
  const presence = (await np.json()) as any;
  assert.deepEqual(presence.users.find((u: any) => u.user === 'bob').state, { avatar: 'b2.png' }, 'presence shows public state only');
  assert.equal(JSON.stringify(native.pushes).includes('private-phone'), false);
  native.close();

  // Heartbeat: an empty array every 5 s.
  await alice.waitFor(() => alice.frames.some((f) => f.length === 0), 6500, 'heartbeat []');

  // Server-side subscribe of alice (held by node2) through node1; a private message in that channel.
  const sub = await cs(n1.http, '/subscribe', { conn_id: a.body.conn_id, channels: ['news'] });
  assert.equal(sub.status, 200, JSON.stringify(sub.body));
  assert.deepEqual(sub.body.subscribed_to, ['news']);
  assert.deepEqual(sub.body.channels, ['chat', 'news']);
  await postUntilReceived(n1.http, alice, 'news', 'extra');
  await cs(n1.http, '/message', [{ pm_users: ['alice'], channel: 'elsewhere', user: 'system', message: 'not in that channel' }, { pm_users: ['alice'], channel: 'news', user: 'system', message: 'pm' }]);
  // Both go down alice's user topic in this order: once 'pm' is here, the other would have been too.
  await alice.waitFor(() => alice.of('message').some((m) => m.message === 'pm'), 5000, 'private message in news');
  assert.equal(alice.of('message').some((m) => m.message === 'not in that channel'), false);
  const unsub = await cs(n1.http, '/unsubscribe', { conn_id: a.body.conn_id, channels: ['news'] });
  assert.deepEqual(unsub.body.unsubscribed_from, ['news']);
  assert.deepEqual(unsub.body.channels, ['chat']);

  // Bob parts: alice hears it once bob's connection is gone (disconnect closes it with 4007).
  const d = await cs(n2.http, '/disconnect', { conn_id: b.body.conn_id });
  assert.equal(d.status, 200);
  assert.equal(d.body, true);
  await bob.waitClosed();
  assert.equal(bob.closeCode, 4007);
  await alice.waitFor(() => alice.of('presence').some((p) => p.message.action === 'parted' && p.user === 'bob'), 5000, 'bob parted');
  assert.equal(alice.of('presence').find((p) => p.message.action === 'parted').state, null);
  const again = await cs(n2.http, '/disconnect', { conn_id: b.body.conn_id });
  assert.equal(again.body, false);
});

test('an unknown conn_id is refused at the websocket upgrade', async () => {
  await assert.rejects(CsClient.open(cluster.nodes[0]!.url, 'no-such-connection'), /HTTP 404/);
});

test('allow_posting_from limits the channelstream API to the listed source addresses', async () => {
  const allowed = await startSingleNode({ TIDINGS_SECRET: SECRET, TIDINGS_ALLOW_POSTING_FROM: '127.0.0.1' });
  const denied = await startSingleNode({ TIDINGS_SECRET: SECRET, TIDINGS_ALLOW_POSTING_FROM: '10.1.2.3' });
  try {
    assert.equal((await cs(allowed.http, '/info', {})).status, 200);
    const r = await cs(denied.http, '/info', {});
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 119);
  } finally {
    await Promise.all([allowed.stop(), denied.stop()]);
  }
});

test('a registered conn_id survives its websocket closing and may come back on another node; a second websocket replaces the first', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const r = await cs(n1.http, '/connect', { username: 'carl', channels: ['room2'], channel_configs: { room2: { notify_presence: true, store_history: true } } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const id = r.body.conn_id as string;
  const first = await CsClient.open(n1.url, id);
  first.close();
  await first.waitClosed();
  const info = await cs(n2.http, '/info', { info: { channels: ['room2'] } });
  assert.deepEqual(info.body.channels.room2.users, ['carl'], 'still present after the websocket closed');
  // Once the director knows carl's websocket is gone, what is sent is replayed to him with catchup: true when he comes back.
  const deadline = Date.now() + 5000;
  let where: any;
  do {
    where = (await postJson(`${n2.http}/api/connections/info`, { conn_id: id })).body;
    if (where.edge === null) break;
    await new Promise((res) => setTimeout(res, 20));
  } while (Date.now() < deadline);
  assert.equal(where.edge, null, 'no node holds the connection while its client is away');
  assert.equal(where.registered, true);
  const away = await cs(n1.http, '/message', [{ channel: 'room2', user: 'dora', message: 'while you were away' }]);
  assert.equal(away.status, 200, JSON.stringify(away.body));
  const second = await CsClient.open(n2.url, id);
  clients.push(second);
  await second.waitFor(() => second.of('message').some((m) => m.message === 'while you were away'), 5000, 'catch-up');
  const caught = second.of('message').find((m) => m.message === 'while you were away');
  assert.equal(caught.catchup, true);
  assert.equal(caught.user, 'dora');
  await postUntilReceived(n1.http, second, 'room2', 'back');
  const third = await CsClient.open(n1.url, id);
  clients.push(third);
  await second.waitClosed();
  assert.equal(second.closeCode, 4007, 'replaced by the newer websocket');
  await postUntilReceived(n1.http, third, 'room2', 'again');
  const after = await cs(n2.http, '/info', { info: { channels: ['room2'] } });
  assert.equal(after.body.channels.room2.total_connections, 1);
});
