/**
 * One user's joins and leaves are applied in the order their replies were
 * given, across nodes. Node 1's commands reach the director 300 ms late
 * (a delaying proxy on its command link): a user subscribes there and, once
 * the reply arrives, unsubscribes its other connection on node 2, which
 * reaches the director at once. The watcher must see one join and no leave:
 * the edge replies to a subscribe only after the director applied the join.
 * (Before that rule, node 1 reported the join after replying, and node 2's
 * leave overtook it: join, leave, join.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, TOKEN_SECRET, API_KEY, type TidingsProcess } from '../helpers/processes.js';
import { freePorts } from '../helpers/ports.js';
import { delayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { TestClient } from '../helpers/client.js';
import { postJson } from '../helpers/http.js';

const DELAY_MS = 300;
const host = '127.0.0.1';
const procs: TidingsProcess[] = [];
const clients: TestClient[] = [];
let proxy: DelayProxy;
let directorHttp = '';
const nodeUrls: string[] = [];

before(async () => {
  const [dport, dsub, dpub, dcmd] = await freePorts(4);
  const common = { TIDINGS_SERVER_HOST: host, TIDINGS_TOKEN_SECRET: TOKEN_SECRET, TIDINGS_API_KEYS: API_KEY };
  procs.push(
    serve('director', {
      ...common,
      TIDINGS_SERVER_PORT: String(dport),
      TIDINGS_EDGE_ENABLED: 'false',
      TIDINGS_SUBSCRIBER_ADDRESS: `tcp://${host}:${dsub}`,
      TIDINGS_PUBLISHER_ADDRESS: `tcp://${host}:${dpub}`,
      TIDINGS_COMMAND_ADDRESS: `tcp://${host}:${dcmd}`,
    }),
  );
  directorHttp = `http://${host}:${dport}`;
  proxy = await delayProxy(host, dcmd!, DELAY_MS);
  for (const [i, command] of [proxy.address, `tcp://${host}:${dcmd}`].entries()) {
    const [port, sub, pub, cmd] = await freePorts(4);
    nodeUrls.push(`ws://${host}:${port}/ws`);
    procs.push(
      serve(`node${i + 1}`, {
        ...common,
        TIDINGS_SERVER_PORT: String(port),
        TIDINGS_DIRECTOR_ENABLED: 'false',
        TIDINGS_FORWARDER_ENABLED: 'true',
        TIDINGS_SUBSCRIBER_ADDRESS: `tcp://${host}:${sub}`,
        TIDINGS_PUBLISHER_ADDRESS: `tcp://${host}:${pub}`,
        TIDINGS_COMMAND_ADDRESS: `tcp://${host}:${cmd}`,
        TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: `tcp://${host}:${dsub}`,
        TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: `tcp://${host}:${dpub}`,
        TIDINGS_DIRECTOR_COMMAND_ADDRESS: command,
      }),
    );
  }
  await Promise.all(procs.map((p) => p.waitFor(/"msg":"node ready"/, 30_000)));
});
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(procs.map((p) => p.stop()));
  await proxy?.close();
});

test('a join answered on a slow node is applied before a leave sent after that answer on another node', async () => {
  const [slow, fast] = nodeUrls as [string, string];
  const cfg = await postJson(`${directorHttp}/api/channel_config`, { channels: { order: { notify_presence: true } } });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.body));
  const connect = async (url: string, user: string): Promise<TestClient> => {
    const c = await TestClient.connect(url, user);
    clients.push(c);
    return c;
  };
  const watcher = await connect(fast, 'watcher');
  await watcher.call('subscribe', { channel: 'order' });
  const onFast = await connect(fast, 'erin');
  const onSlow = await connect(slow, 'erin');
  await onFast.call('subscribe', { channel: 'order' });
  const events = () => watcher.pushes.filter((p) => (p.type === 'join' || p.type === 'leave') && p.user === 'erin').map((p) => p.type);
  await watcher.waitFor(() => events().length === 1, 5000, 'erin join');

  const t0 = Date.now();
  await onSlow.call('subscribe', { channel: 'order' });
  const subscribeMs = Date.now() - t0;
  // erin still has a connection in the channel: no leave may be announced.
  await onFast.call('unsubscribe', { channel: 'order' });
  const marker = await postJson(`${directorHttp}/api/publish`, { channel: 'order', data: { marker: 1 } });
  assert.equal(marker.status, 200);
  await watcher.waitFor(() => watcher.messages('order').length === 1, 5000, 'marker');
  // Node 1's late reports have all arrived by now (its subscribe waited for them).
  await new Promise((r) => setTimeout(r, DELAY_MS + 100));
  assert.deepEqual(events(), ['join'], `only the first join (subscribe on the slow node took ${subscribeMs} ms)`);
  const stats = await postJson(`${directorHttp}/api/presence_stats`, { channel: 'order' });
  assert.deepEqual(stats.body, { channel: 'order', users: 2, connections: 2 }, 'erin (slow node) and the watcher');

  // And the last leave, answered on the slow node, is announced once.
  await onSlow.call('unsubscribe', { channel: 'order' });
  await watcher.waitFor(() => events().length === 2, 5000, 'erin leave');
  assert.deepEqual(events(), ['join', 'leave']);
});
