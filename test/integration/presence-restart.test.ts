/**
 * Presence survives a director restart: the director comes back with no
 * state, and every edge, seeing its heartbeat answered with "unknown
 * instance", re-sends its full list of connections and subscriptions.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, serve, TOKEN_SECRET, API_KEY, type Cluster, type TidingsProcess } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';

const PRESENCE_TTL_S = 3;
let cluster: Cluster;
let restarted: TidingsProcess | null = null;
const clients: TestClient[] = [];
let oldEpoch = '';

before(async () => {
  cluster = await startCluster(2, 1, { TIDINGS_PRESENCE_TTL: String(PRESENCE_TTL_S) });
});
after(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
  await restarted?.stop();
});

async function presenceViaApi(http: string, channel: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${http}/api/presence_stats`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({ channel }),
  });
  return { status: res.status, body: await res.json() };
}

test('after a director restart the edges re-send their connections within a heartbeat', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  for (const [url, user] of [[n1.url, 'ann'], [n2.url, 'ann'], [n2.url, 'ben']] as const) {
    const c = await TestClient.connect(url, user);
    oldEpoch = (await c.call('subscribe', { channel: 'stay' })).epoch;
    clients.push(c);
  }
  const deadline = Date.now() + 5000;
  while ((await presenceViaApi(n1.http, 'stay')).body.connections !== 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual((await presenceViaApi(n1.http, 'stay')).body, { channel: 'stay', users: 2, connections: 3 });

  const d = cluster.director;
  await d.proc.kill9();
  const url = new URL(d.http);
  restarted = serve('director-again', {
    TIDINGS_SERVER_HOST: url.hostname,
    TIDINGS_SERVER_PORT: url.port,
    TIDINGS_EDGE_ENABLED: 'false',
    TIDINGS_SUBSCRIBER_ADDRESS: d.subscriber,
    TIDINGS_PUBLISHER_ADDRESS: d.publisher,
    TIDINGS_COMMAND_ADDRESS: d.command,
    TIDINGS_TOKEN_SECRET: TOKEN_SECRET,
    TIDINGS_API_KEYS: API_KEY,
    TIDINGS_NODE_ID: 'director',
    TIDINGS_PRESENCE_TTL: String(PRESENCE_TTL_S),
  });
  await restarted.waitFor(/"msg":"node ready"/, 20000);
  const upAt = Date.now();
  let stats: any = null;
  while (Date.now() - upAt < 10_000) {
    const r = await presenceViaApi(d.http, 'stay');
    stats = r.body;
    if (r.status === 200 && stats.connections === 3) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const ms = Date.now() - upAt;
  console.log(`# presence rebuilt ${ms} ms after the director restarted`);
  assert.deepEqual(stats, { channel: 'stay', users: 2, connections: 3 });
  // Heartbeats come every presence_ttl/3 s; the snapshot follows the first unanswered-instance reply.
  assert.ok(ms <= (2 * PRESENCE_TTL_S * 1000) / 3 + 1000, `rebuilt after ${ms} ms`);
});

test('after the restart the channel has a new epoch: edges see the break in the stream and close its subscribers with 4008', async () => {
  const d = cluster.director;
  const r = await fetch(`${d.http}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({ channel: 'stay', data: { after: 'restart' } }),
  });
  assert.equal(r.status, 200);
  for (const c of clients) {
    await c.waitClosed(10000);
    assert.equal(c.closeCode, 4008, 'unavailable: the director restarted, reconnect and recover');
    assert.match(c.closeReason, /director/);
    assert.equal(c.messages('stay').length, 0, 'the message of the new epoch is not delivered as if it followed the old stream');
  }
  // Resubscribing with the old position says it was not recovered, and replays the new epoch's history.
  const again = await TestClient.connect(cluster.nodes[0]!.url, 'ann');
  clients.push(again);
  const sub = await again.call('subscribe', { channel: 'stay', recover: { offset: 0, epoch: oldEpoch } });
  assert.notEqual(sub.epoch, oldEpoch);
  assert.equal(sub.recovered, false);
  assert.equal(sub.replayed, 1);
  await again.waitFor(() => again.messages('stay').length === 1, 5000, 'the new epoch message');
  assert.deepEqual(again.messages('stay')[0]!.data, { after: 'restart' });
});
