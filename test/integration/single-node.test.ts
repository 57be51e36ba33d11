import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSingleNode, runCli, type SingleNode } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';

let node: SingleNode;
before(async () => {
  node = await startSingleNode();
});
after(async () => {
  await node?.stop();
});

test('a subscriber receives messages published with tidings publish, in offset order', async () => {
  const c = await TestClient.connect(node.url, 'alice');
  const sub = await c.call('subscribe', { channel: 'room1' });
  assert.equal(sub.channel, 'room1');
  const r = await runCli(['publish', '--channel', 'room1', '--data', '{"n":1}', '--count', '50', '--publisher-address', node.publisher]);
  assert.equal(r.code, 0, r.stderr);
  await c.waitFor(() => c.messages('room1').length === 50, 10000, '50 messages');
  const offsets = c.messages('room1').map((m) => m.offset);
  assert.deepEqual(offsets, Array.from({ length: 50 }, (_, i) => sub.offset + 1 + i));
  c.close();
});

test('server_base_url mounts every route under a prefix', async () => {
  const prefixed = await startSingleNode({ TIDINGS_SERVER_BASE_URL: '/rt' });
  try {
    assert.equal((await fetch(`${prefixed.http}/rt/healthz`)).status, 200);
    assert.equal((await fetch(`${prefixed.http}/healthz`)).status, 404);
    const c = await TestClient.connect(`ws://127.0.0.1:${prefixed.port}/rt/ws`, 'prefixed');
    assert.equal((await c.call('subscribe', { channel: 'p' })).channel, 'p');
    c.close();
    await assert.rejects(TestClient.open(prefixed.url), /HTTP 404/);
  } finally {
    await prefixed.stop();
  }
});
