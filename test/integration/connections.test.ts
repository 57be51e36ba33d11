/**
 * Server-side connection management, channel configs with collection, and
 * the debug views, on a director + two forwarder nodes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, API_KEY, TOKEN_SECRET, type Cluster } from '../helpers/processes.js';
import { signToken } from '../../src/auth/sign.js';
import { TestClient } from '../helpers/client.js';

const ADMIN = 'admin-secret-for-tests';
let cluster: Cluster;
const clients: TestClient[] = [];

before(async () => {
  cluster = await startCluster(2, 1, { TIDINGS_ADMIN_SECRET: ADMIN, TIDINGS_CHANNEL_IDLE_TIMEOUT: '1', TIDINGS_ALLOW_ANONYMOUS: 'true' });
});
after(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
});

async function api(base: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function waitUntil(pred: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('subscribe, unsubscribe and disconnect a connection held by another node', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  // c is held by node2; the API calls go to node1. No subscribe grants: the server decides.
  const [c, id] = await connectWithId(n2.url, 'uma');
  const [c2] = await connectWithId(n1.url, 'uma');
  const sub = await api(n1.http, '/api/connections/subscribe', { conn_id: id, channels: ['srv'] });
  assert.equal(sub.status, 200, JSON.stringify(sub.body));
  assert.deepEqual(sub.body.subscribed_to, ['srv']);
  await c.waitFor(() => c.pushes.some((p) => p.type === 'subscribed' && p.channel === 'srv'), 5000, 'subscribed push');
  const pub = await api(cluster.director.http, '/api/publish', { channel: 'srv', data: { n: 1 } });
  assert.equal(pub.status, 200);
  await c.waitFor(() => c.messages('srv').length === 1, 5000, 'message on server-side subscription');
  const unsub = await api(n1.http, '/api/connections/unsubscribe', { conn_id: id, channels: ['srv'] });
  assert.deepEqual(unsub.body.unsubscribed_from, ['srv']);
  await c.waitFor(() => c.pushes.some((p) => p.type === 'unsubscribed' && p.channel === 'srv'), 5000, 'unsubscribed push');
  const unknown = await api(n1.http, '/api/connections/subscribe', { conn_id: 'nobody', channels: ['srv'] });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.error.code, 124);
  // Disconnect every connection of the user, on both nodes: closed with 4007.
  const d = await api(n1.http, '/api/connections/disconnect', { user: 'uma' });
  assert.equal(d.status, 200);
  assert.equal(d.body.disconnected.length, 2);
  await c.waitClosed();
  await c2.waitClosed();
  assert.equal(c.closeCode, 4007);
  assert.equal(c2.closeCode, 4007);
});

/** Connect natively and return the connection id from the connect reply. */
async function connectWithId(url: string, user: string): Promise<[TestClient, string]> {
  const c = await TestClient.open(url);
  clients.push(c);
  const token = await signToken({ secret: TOKEN_SECRET, user, ttl: 3600, subscribe: [], publish: [] });
  const r = await c.call('connect', { token });
  return [c, r.client as string];
}

/**
 * The director learns of a connection in the turn its connect is answered, not later: a
 * backend that hears the id from its client and at once subscribes or disconnects it
 * server-side finds it (no 124). Each connection here comes after others on a busy edge
 * (an edge's first connections reach the director in its first snapshot instead), so an
 * attach report held back to ride with a later join (the idea of saving a report per
 * connect) fails this test.
 */
test('a connection is subscribed and disconnected server-side right after its connect, on an edge already reporting', async () => {
  const n1 = cluster.nodes[0]!;
  const [warm] = await connectWithId(n1.url, 'wren');
  await warm.call('subscribe', { channel: 'warm' }).catch(() => undefined);
  for (let i = 0; i < 5; i++) {
    const [c, id] = await connectWithId(n1.url, `quick-${i}`);
    const sub = await api(n1.http, '/api/connections/subscribe', { conn_id: id, channels: ['fast'] });
    assert.equal(sub.status, 200, `server-side subscribe right after connect ${i}: ${JSON.stringify(sub.body)}`);
    assert.deepEqual(sub.body.subscribed_to, ['fast']);
    await c.waitFor(() => c.pushes.some((p) => p.type === 'subscribed' && p.channel === 'fast'), 5000, 'subscribed push');
    const [c2] = await connectWithId(n1.url, `quick-${i}`);
    const d = await api(n1.http, '/api/connections/disconnect', { user: `quick-${i}` });
    assert.equal(d.body.disconnected.length, 2, `both connections of quick-${i}, the second just connected`);
    await c.waitClosed();
    await c2.waitClosed();
  }
});

test('channel configs apply on creation and are collected with their idle channel', async () => {
  const d = cluster.director.http;
  const bad = await api(d, '/api/channel_config', { channels: { tmp: { history_size: -1 } } });
  assert.equal(bad.status, 422);
  assert.equal(bad.body.error.code, 116);
  const cfg = await api(d, '/api/channel_config', { channels: { tmp: { notify_presence: true, store_history: true, history_size: 3, history_ttl: 2 } } });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.body));
  assert.deepEqual(cfg.body.channels.tmp, { notify_presence: true, broadcast_presence_with_user_lists: false, notify_state: false, store_history: true, history_size: 3, history_ttl: 2, store_frames: true });
  for (let i = 0; i < 5; i++) assert.equal((await api(d, '/api/publish', { channel: 'tmp', data: i, no_history: false })).status, 200);
  const info = await api(d, '/api/info', { channels: ['tmp'] });
  assert.equal(info.body.channels.tmp.history.length, 3, 'history_size applied');
  // With history left the channel stays although idle (channel_idle_timeout 1 s); when its history
  // expires (history_ttl 2 s) it is collected with its config.
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal((await api(d, '/api/info', {})).body.channels.tmp.history.length, 3, 'kept while history is left');
  await waitUntil(async () => !('tmp' in (await api(d, '/api/info', {})).body.channels), 5000, 'collection of tmp');
  // A later use starts from the defaults again.
  const after = await api(d, '/api/channel_config', { channels: { tmp: {} } });
  assert.equal(after.body.channels.tmp.notify_presence, false);
  assert.equal(after.body.channels.tmp.history_size, 10);
});

test('debug views list subscribers of the whole cluster, behind the admin secret', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const a = await TestClient.connect(n1.url, 'dan');
  const b = await TestClient.open(n2.url);
  clients.push(a, b);
  await b.call('connect', {}); // anonymous: listed here, never in presence
  await a.call('subscribe', { channel: 'dbg' });
  await b.call('subscribe', { channel: 'dbg' });
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${n2.http}${path}`, { headers }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  assert.equal((await get('/debug/')).status, 401);
  assert.equal((await get('/debug/', { authorization: 'Bearer wrong' })).status, 401);
  let all: any;
  await waitUntil(async () => {
    all = (await get('/debug/', { authorization: `Bearer ${ADMIN}` })).body;
    return all.subscribers?.dbg?.length === 2;
  }, 5000, 'two dbg subscribers');
  assert.ok(all.subscriber_count >= 2);
  const one = await get('/debug/channels/dbg/', { 'x-admin-secret': ADMIN });
  assert.equal(one.status, 200);
  assert.equal(one.body.subscriber_count, 2);
  assert.deepEqual(Object.keys(one.body.subscribers), ['dbg']);
  assert.ok(one.body.subscribers.dbg.every((id: string) => id.startsWith('node1/') || id.startsWith('node2/')));
  const presence = await a.call('presence_stats', { channel: 'dbg' });
  assert.deepEqual(presence, { channel: 'dbg', users: 1, connections: 1 });
});
