/**
 * Recovery through the SDK in a cluster: the node of a subscriber is killed
 * (kill -9) while messages are published; the client fails over to the other
 * node, resubscribes with its last offset/epoch and ends up with every offset
 * exactly once, in order.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startCluster, TOKEN_SECRET, type Cluster } from '../helpers/processes.js';
import { signToken } from '../../src/auth/sign.js';
import { TidingsClient, type MessagePush, type SubscribedEvent } from '../../src/client/index.js';

let cluster: Cluster;
const clients: TidingsClient[] = [];

before(async () => {
  // History deep enough to cover every message published during the failover.
  cluster = await startCluster(2, 1, { TIDINGS_HISTORY_SIZE: '1000' });
});
after(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.stop();
});

function sdk(urls: string[], user: string): TidingsClient {
  const c = new TidingsClient({
    urls,
    WebSocket,
    getToken: () => signToken({ secret: TOKEN_SECRET, user, ttl: 600, subscribe: ['*'], publish: ['*'] }),
    initialRetryDelay: 0.2,
    maxRetryDelay: 1,
    timeout: 5,
  });
  clients.push(c);
  c.connect();
  return c;
}

test('kill -9 of the subscriber\'s node while publishing: 0 missing, 0 duplicated offsets', async () => {
  const [n1, n2] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
  const channel = 'sdk.recovery';
  const sub = sdk([n1.url, n2.url], 'reader');
  const pub = sdk([n2.url], 'writer');
  await Promise.all([sub.ready(10), pub.ready(10)]);
  assert.match(sub.info!.url, new RegExp(`:${n1.port}/`));

  const s = sub.subscribe(channel);
  const got: MessagePush[] = [];
  const subscribed: SubscribedEvent[] = [];
  s.on('message', (m) => got.push(m));
  s.on('subscribed', (e) => subscribed.push(e));
  await s.ready(10);

  // Publish 300 messages at a steady pace; kill node 1 after the first 100.
  const offsets: number[] = [];
  const TOTAL = 300;
  for (let i = 0; i < TOTAL; i++) {
    if (i === 100) await n1.proc.kill9();
    const r = await pub.publish(channel, { i });
    offsets.push(r.offset);
    if (i % 10 === 0) await new Promise((r) => setTimeout(r, 10));
  }
  const deadline = Date.now() + 15_000;
  while (got.length < TOTAL && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

  const seen = got.map((m) => m.offset);
  const missing = offsets.filter((o) => !seen.includes(o));
  const duplicated = seen.filter((o, i) => seen.indexOf(o) !== i);
  assert.deepEqual(missing, [], `${missing.length} missing; subscribed ${JSON.stringify(subscribed)}; missing ${missing.slice(0, 20)}`);
  assert.deepEqual(duplicated, [], `${duplicated.length} duplicated`);
  assert.deepEqual(seen, [...offsets].sort((a, b) => a - b), 'every offset once, in order');
  assert.deepEqual(got.map((m) => (m.data as { i: number }).i), Array.from({ length: TOTAL }, (_, i) => i));

  assert.match(sub.info!.url, new RegExp(`:${n2.port}/`), 'failed over to node 2');
  assert.equal(subscribed.length, 2);
  const re = subscribed[1]!;
  assert.equal(re.resubscribed, true);
  assert.equal(re.recovered, true, 'the subscription reports a full recovery');
  assert.ok(re.replayed > 0, `messages published during the failover were replayed (${re.replayed})`);
});
