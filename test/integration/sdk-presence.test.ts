/**
 * Presence through the SDK across two nodes: presence(), presenceStats() and
 * join/leave events on a room configured with notify_presence (the demo's
 * token endpoint configures its rooms that way). Needs the presence methods
 * of the channel-state work.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startCluster, type Cluster, type ClusterNode } from '../helpers/processes.js';
import { TidingsClient, type JoinEvent, type LeaveEvent } from '../../src/client/index.js';

let cluster: Cluster;
const clients: TidingsClient[] = [];

before(async () => {
  cluster = await startCluster(2, 1, { TIDINGS_DEMO: 'true' });
});
after(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.stop();
});

async function demoClient(node: ClusterNode, user: string): Promise<TidingsClient> {
  const res = await fetch(`${node.http}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) });
  const { token } = (await res.json()) as { token: string };
  const c = new TidingsClient({ urls: [node.url], WebSocket, getToken: () => token, timeout: 5 });
  clients.push(c);
  c.connect();
  await c.ready(5);
  return c;
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('presence, presence stats and join/leave events across nodes', async () => {
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  const room = 'demo.lobby';
  const a = await demoClient(n1, 'ann');
  const events: (JoinEvent | LeaveEvent)[] = [];
  const subA = a.subscribe(room);
  subA.on('join', (e) => events.push(e));
  subA.on('leave', (e) => events.push(e));
  await subA.ready(5);

  const b = await demoClient(n2, 'ben');
  await b.subscribe(room).ready(5);
  await until(() => events.some((e) => e.type === 'join' && e.user === 'ben'), 5000, 'ben\'s join on ann\'s node');

  const p = await a.presence(room);
  assert.equal(p.channel, room);
  assert.deepEqual(p.users.map((u) => [u.user, u.connections]), [['ann', 1], ['ben', 1]], 'counts only: connection ids are never shown to clients');
  assert.deepEqual(await b.presenceStats(room), { channel: room, users: 2, connections: 2 });
  await assert.rejects(a.presence('private.room'), (e: Error & { code?: number }) => e.code === 103);

  b.disconnect();
  await until(() => events.some((e) => e.type === 'leave' && e.user === 'ben'), 5000, 'ben\'s leave');
  assert.deepEqual((await a.presence(room)).users.map((u) => u.user), ['ann']);
});
