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
