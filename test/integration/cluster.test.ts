/**
 * A director and two forwarder nodes with two edge workers each, as real
 * processes: delivery across nodes in offset order, messages to users, exact
 * channel matching, and no traffic to a node whose clients do not subscribe.
 * The cluster runs with CURVE keys (a pair per node, a worker key for the
 * publishing CLI), as a production cluster does; the other cluster tests
 * run without, as the default on loopback does.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, runCli, type Cluster } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { metric, postJson } from '../helpers/http.js';
import { curveCluster, type CurveCluster } from '../helpers/curve.js';
import { userBucket } from '../../src/cluster/topics.js';

let cluster: Cluster;
let keys: CurveCluster;
const clients: TestClient[] = [];

before(async () => {
  keys = curveCluster(2);
  cluster = await startCluster(2, 2, {}, keys.env);
});
after(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
  keys?.cleanup();
});

async function client(url: string, user: string): Promise<TestClient> {
  const c = await TestClient.connect(url, user);
  clients.push(c);
  return c;
}

test('messages from workers, forwarders and HTTP reach clients on both nodes in offset order', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  assert.match(cluster.director.proc.text(), /"curve":true[^\n]*"director listening"/, 'the director runs CURVE');
  for (const n of cluster.nodes) assert.match(n.proc.text(), /"curve":true[^\n]*"forwarder running"/, 'the forwarders run CURVE');
  // Four connections per node so both edge workers of each node hold subscribers.
  const subs: TestClient[] = [];
  for (const n of [n1, n2]) for (let i = 0; i < 4; i++) subs.push(await client(n.url, `u${subs.length}`));
  const starts = await Promise.all(subs.map((c) => c.call('subscribe', { channel: 'orders' })));
  const epoch = starts[0].epoch;
  for (const s of starts) assert.equal(s.epoch, epoch, 'one epoch for the channel across the cluster');
  // node:cluster hands connections to the workers round-robin: all four edges hold subscribers.
  const edges = new Set(subs.map((c) => c.session!.node));
  assert.deepEqual([...edges].sort(), ['node1/e0', 'node1/e1', 'node2/e0', 'node2/e1']);

  const viaDirector = runCli(['publish', '--channel', 'orders', '--data', '{"via":"director"}', '--count', '100', '--publisher-address', cluster.director.publisher, ...keys.workerArgs(keys.director)]);
  const viaNode = runCli(['publish', '--channel', 'orders', '--data', '{"via":"node1"}', '--count', '100', '--publisher-address', n1.publisher, ...keys.workerArgs(keys.nodes[0]!)]);
  const http: Promise<unknown>[] = [];
  for (let i = 0; i < 20; i++) http.push(postJson(`${n2.http}/api/publish`, { channel: 'orders', data: { via: 'http', i } }));
  const results = await Promise.all([viaDirector, viaNode]);
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  for (const r of (await Promise.all(http)) as Array<{ status: number }>) assert.equal(r.status, 200);

  for (const [i, c] of subs.entries()) {
    await c.waitFor(() => c.messages('orders').length >= 220, 15000, `client ${i} to get 220 messages`);
    const msgs = c.messages('orders');
    assert.equal(msgs.length, 220, `client ${i}: exactly 220 messages`);
    const offsets = msgs.map((m) => m.offset!);
    const first = starts[i].offset + 1;
    assert.deepEqual(offsets, Array.from({ length: 220 }, (_, k) => first + k), `client ${i}: consecutive offsets, no gap, no duplicate`);
    assert.ok(msgs.every((m) => m.epoch === epoch));
    const bySource = (via: string): number => msgs.filter((m) => (m.data as { via: string }).via === via).length;
    assert.deepEqual([bySource('director'), bySource('node1'), bySource('http')], [100, 100, 20]);
  }
});

test('a message to a user reaches every connection of that user on every node', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const bobs = [await client(n1.url, 'bob'), await client(n1.url, 'bob'), await client(n2.url, 'bob')];
  const carol = await client(n2.url, 'carol');
  // user107 shares bob's bucket (one edge subscription for both): two on each node, so one shares an edge with a bob.
  assert.equal(userBucket('user107'), userBucket('bob'));
  const sameBucket = [await client(n1.url, 'user107'), await client(n1.url, 'user107'), await client(n2.url, 'user107'), await client(n2.url, 'user107')];
  assert.ok(new Set(sameBucket.map((c) => c.session!.node)).size === 4, 'user107 on every edge');
  const r = await postJson(`${cluster.director.http}/api/publish`, { users: ['bob'], data: { note: 'for bob' }, sender: 'billing' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, { users: 1 });
  const seth = await postJson(`${n1.http}/api/users/bob/`, { note: 'seth style', sender_id: 'ops' });
  assert.deepEqual(seth, { status: 200, body: { status: 200 } });
  const zmq = await runCli(['publish', '--user', 'bob', '--data', '{"note":"over zeromq"}', '--publisher-address', n2.publisher, ...keys.workerArgs(keys.nodes[1]!)]);
  assert.equal(zmq.code, 0, zmq.stderr);
  for (const b of bobs) {
    await b.waitFor(() => b.pushes.filter((p) => p.type === 'direct').length === 3, 10000, 'three direct messages');
    const direct = b.pushes.filter((p) => p.type === 'direct');
    assert.deepEqual(direct.map((d) => (d.data as { note: string }).note).sort(), ['for bob', 'over zeromq', 'seth style']);
    assert.equal(direct.find((d) => (d.data as { note: string }).note === 'for bob')!.sender, 'billing');
    assert.equal(direct.find((d) => (d.data as { note: string }).note === 'seth style')!.sender, 'ops');
    assert.ok(direct.every((d) => d['user'] === 'bob'));
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(carol.pushes.filter((p) => p.type === 'direct').length, 0, 'other users get nothing');
  for (const u of sameBucket) assert.equal(u.pushes.filter((p) => p.type === 'direct').length, 0, 'nor do other users of the same bucket on the same edge');
});

test('channel matching is exact: room1 never receives room10 or room1x', async () => {
  const [n1] = cluster.nodes;
  const c = await client(n1!.url, 'exact');
  await c.call('subscribe', { channel: 'room1' });
  for (const ch of ['room10', 'room1x', 'room', 'room1.sub', 'room1']) {
    const r = await postJson(`${cluster.director.http}/api/publish`, { channel: ch, data: { ch } });
    assert.equal(r.status, 200);
  }
  await c.waitFor(() => c.messages('room1').length === 1, 10000, 'the room1 message');
  await new Promise((r) => setTimeout(r, 300));
  const got = c.pushes.filter((p) => p.type === 'message');
  assert.deepEqual(got.map((p) => p.channel), ['room1'], 'only room1');
});

test('a node whose clients hold no subscription to a channel receives none of its messages', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const busy = await client(n1.url, 'busy-reader');
  await busy.call('subscribe', { channel: 'busy' });
  const idle = await client(n2.url, 'idle-reader');
  await idle.call('subscribe', { channel: 'quiet' });

  const downBefore = [await metric(n1.http, 'tidings_forwarder_messages_total', { path: 'down' }), await metric(n2.http, 'tidings_forwarder_messages_total', { path: 'down' })];
  const r = await runCli(['publish', '--channel', 'busy', '--data', '{"x":1}', '--count', '300', '--publisher-address', cluster.director.publisher, ...keys.workerArgs(keys.director)]);
  assert.equal(r.code, 0, r.stderr);
  await busy.waitFor(() => busy.messages('busy').length === 300, 15000, '300 busy messages on node1');
  await new Promise((res) => setTimeout(res, 300));
  const downAfter = [await metric(n1.http, 'tidings_forwarder_messages_total', { path: 'down' }), await metric(n2.http, 'tidings_forwarder_messages_total', { path: 'down' })];
  assert.ok(downAfter[0]! - downBefore[0]! >= 300, `node1's forwarder carried the messages (${downAfter[0]! - downBefore[0]!})`);
  assert.equal(downAfter[1]! - downBefore[1]!, 0, 'node2 received nothing for a channel none of its clients holds');
  assert.equal(idle.pushes.filter((p) => p.type === 'message').length, 0);
});
