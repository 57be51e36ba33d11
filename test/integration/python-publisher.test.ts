/** The Python example in docs/examples/publish.py, run with Debian's python3-zmq, reaches websocket clients. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { startSingleNode, type SingleNode } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';

const example = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'docs', 'examples', 'publish.py');
let node: SingleNode;
before(async () => {
  node = await startSingleNode();
});
after(async () => {
  await node?.stop();
});

test('docs/examples/publish.py publishes with pyzmq; nothing is lost', async () => {
  const c = await TestClient.connect(node.url, 'py-reader');
  await c.call('subscribe', { channel: 'from-python' });
  const r = spawnSync('/usr/bin/python3', [example, node.publisher, 'from-python', '200'], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
  await c.waitFor(() => c.messages('from-python').length === 201, 10000, '201 messages');
  const msgs = c.messages('from-python');
  assert.deepEqual(msgs.slice(0, 200).map((m) => (m.data as { n: number }).n), Array.from({ length: 200 }, (_, i) => i));
  assert.ok(msgs.slice(0, 200).every((m) => m.sender === 'python-worker'));
  assert.deepEqual(msgs[200]!.data, { type: 'omnibus', sender: 'legacy', payload: { n: 200 } });
  assert.equal(msgs[200]!.sender, 'legacy');
  c.close();
});
