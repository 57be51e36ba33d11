/**
 * Presence across a director and two forwarder nodes: several connections per
 * user, join/leave pushes only on a user's first join and last leave, and a
 * node killed with kill -9 leaving presence within presence_ttl + 1 s.
 */
import { test, before, after } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { startCluster, API_KEY, type Cluster } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';

const PRESENCE_TTL_S = 3;
let cluster: Cluster;
const clients: TestClient[] = [];

before(async () => {
  // Two edge processes per node: presence is per connection, whichever process holds it.
  cluster = await startCluster(2, 2, { TIDINGS_PRESENCE_TTL: String(PRESENCE_TTL_S) });
});
after(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
});

async function client(url: string, user: string): Promise<TestClient> {
  const c = await TestClient.connect(url, user);
  clients.push(c);
  return c;
}

export async function api(base: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
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
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('presence lists users with all their connections across nodes; stats count them', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const a1 = await client(n1.url, 'alice');
  const a2 = await client(n1.url, 'alice');
  const a3 = await client(n2.url, 'alice');
  const b1 = await client(n2.url, 'bob');
  for (const c of [a1, a2, a3, b1]) await c.call('subscribe', { channel: 'lobby' });
  const observer = await client(n2.url, 'carol');
  let p: any;
  await waitUntil(async () => {
    p = await observer.call('presence', { channel: 'lobby' });
    return p.users.length === 2 && p.users[0].connections === 3;
  }, 5000, 'presence of alice x3 and bob');
  assert.deepEqual(p.users.map((u: any) => u.user), ['alice', 'bob']);
  assert.deepEqual(p.users.map((u: any) => u.connections), [3, 1], 'clients see counts, not connection ids');
  assert.deepEqual(p.users[0].state, {});
  assert.deepEqual(await observer.call('presence_stats', { channel: 'lobby' }), { channel: 'lobby', users: 2, connections: 4 });
  // The same answer from the other node and from the HTTP API on the director.
  assert.deepEqual(await a1.call('presence_stats', { channel: 'lobby' }), { channel: 'lobby', users: 2, connections: 4 });
  const viaApi = await api(cluster.director.http, '/api/presence', { channel: 'lobby' });
  assert.equal(viaApi.status, 200);
  assert.deepEqual(viaApi.body.users.map((u: any) => [u.user, u.connections.length]), [['alice', 3], ['bob', 1]]);
  // A presence query without the grant is refused with the catalog code.
  const limited = await TestClient.connect(n1.url, 'dave', { subscribe: ['other'] });
  clients.push(limited);
  const denied = await limited.request('presence', { channel: 'lobby' });
  assert.equal(denied.error?.code, 103);
  for (const c of [a1, a2, a3, b1]) await c.call('unsubscribe', { channel: 'lobby' });
  await waitUntil(async () => (await observer.call('presence_stats', { channel: 'lobby' })).users === 0, 5000, 'empty lobby');
});

test('join and leave pushes only on a user first join and last leave, not to that user', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const cfg = await api(cluster.director.http, '/api/channel_config', { channels: { 'watch': { notify_presence: true } } });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.body));
  assert.equal(cfg.body.channels.watch.notify_presence, true);
  const watcher = await client(n1.url, 'watcher');
  await watcher.call('subscribe', { channel: 'watch' });
  const e1 = await client(n2.url, 'erin');
  const e2 = await client(n1.url, 'erin');
  await e1.call('subscribe', { channel: 'watch' });
  await watcher.waitFor(() => watcher.pushes.some((p) => p.type === 'join' && p.user === 'erin'), 5000, 'erin join');
  await e2.call('subscribe', { channel: 'watch' });
  await e1.call('unsubscribe', { channel: 'watch' });
  // A marker message after the second connection's changes: nothing came in between.
  const r = await api(cluster.director.http, '/api/publish', { channel: 'watch', data: { marker: 1 } });
  assert.equal(r.status, 200);
  await watcher.waitFor(() => watcher.messages('watch').length === 1, 5000, 'marker');
  const events = () => watcher.pushes.filter((p) => p.type === 'join' || p.type === 'leave').filter((p) => p.user === 'erin');
  assert.deepEqual(events().map((p) => p.type), ['join']);
  await e2.call('unsubscribe', { channel: 'watch' });
  await watcher.waitFor(() => events().length === 2, 5000, 'erin leave');
  // A second marker: no late extra event arrived after the leave either.
  await api(cluster.director.http, '/api/publish', { channel: 'watch', data: { marker: 2 } });
  await watcher.waitFor(() => watcher.messages('watch').length === 2, 5000, 'second marker');
  assert.equal(events().length, 2);
  const [join, leave] = events();
  assert.equal(join!.channel, 'watch');
  assert.deepEqual(join!.state, {});
  assert.equal(typeof join!.time, 'number');
  assert.equal(leave!.type, 'leave');
  // erin never hears about herself.
  assert.equal(e1.pushes.concat(e2.pushes).filter((p) => p.type === 'join' && p.user === 'erin').length, 0);
});

function childPids(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

test('a killed edge worker restarted under the same edge id: its old connections still leave presence', async () => {
  const n1 = cluster.nodes[0]!;
  const conns: TestClient[] = [];
  for (let i = 0; i < 6; i++) {
    const c = await client(n1.url, `w${i}`);
    await c.call('subscribe', { channel: 'workers' });
    conns.push(c);
  }
  const observer = await client(cluster.nodes[1]!.url, 'observer');
  const stats = () => observer.call('presence_stats', { channel: 'workers' });
  await waitUntil(async () => (await stats()).connections === 6, 5000, '6 connections');
  const workers = childPids(n1.proc.pid);
  assert.equal(workers.length, 2);
  const killedAt = Date.now();
  process.kill(workers[0]!, 'SIGKILL');
  // The clients of the dead worker see their socket drop; the others stay.
  await new Promise((r) => setTimeout(r, 500));
  const open = conns.filter((c) => c.closeCode === null).length;
  assert.ok(open > 0 && open < 6, `the kill closed some connections but not all (${open} open)`);
  let s: any;
  await waitUntil(async () => {
    s = await stats();
    return s.connections === open;
  }, (PRESENCE_TTL_S + 5) * 1000, 'expiry of the dead worker');
  const ms = Date.now() - killedAt;
  console.log(`# presence expiry after kill -9 of one edge worker: ${ms} ms`);
  assert.ok(ms <= PRESENCE_TTL_S * 1000 + 1000 + 250, `expired after ${ms} ms`);
  for (const c of conns) c.close();
});

test('a node killed with kill -9 leaves presence within presence_ttl + 1 s', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const survivor = await client(n1.url, 'sam');
  await survivor.call('subscribe', { channel: 'doomed' });
  const victims = [await client(n2.url, 'vic'), await client(n2.url, 'vic'), await client(n2.url, 'val')];
  for (const v of victims) await v.call('subscribe', { channel: 'doomed' });
  await waitUntil(async () => (await survivor.call('presence_stats', { channel: 'doomed' })).connections === 4, 5000, '4 connections');
  const killedAt = Date.now();
  await n2.proc.kill9();
  let stats: any;
  await waitUntil(async () => {
    stats = await survivor.call('presence_stats', { channel: 'doomed' });
    return stats.connections === 1;
  }, (PRESENCE_TTL_S + 5) * 1000, 'expiry of the killed node');
  const ms = Date.now() - killedAt;
  console.log(`# presence expiry after kill -9: ${ms} ms (presence_ttl ${PRESENCE_TTL_S} s, bound ${PRESENCE_TTL_S * 1000 + 1000} ms)`);
  assert.deepEqual(stats, { channel: 'doomed', users: 1, connections: 1 });
  assert.ok(ms <= PRESENCE_TTL_S * 1000 + 1000 + 250, `expired after ${ms} ms`);
  const p = await survivor.call('presence', { channel: 'doomed' });
  assert.deepEqual(p.users.map((u: any) => u.user), ['sam']);
  // The director's log names the dead node and its edges, not an opaque instance id.
  assert.match(cluster.director.proc.text(), /"level":40,[^\n]*"msg":"edge node2\/e\d[^"]* silent for 3 s: its connections left presence \(node node2 down\?\)"/);
});
