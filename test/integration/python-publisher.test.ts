/**
 * The Python example in docs/examples/publish.py, run with Debian's
 * python3-zmq, reaches websocket clients of a node with CURVE keys, with a
 * worker key pair written by `tidings keygen --out`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { startSingleNode, runCli, type SingleNode } from '../helpers/processes.js';
import { formatKeyPair } from '../../src/zmq/keys.js';
import { dashKeyPair } from '../helpers/curve.js';
import { TestClient } from '../helpers/client.js';

const example = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'docs', 'examples', 'publish.py');
let node: SingleNode;
const keyDir = mkdtempSync(join(tmpdir(), 'tidings-py-keys-'));
// The node's public key begins with '-' (one Z85 key in 85 does): the example must still take it as `--server-key KEY`.
const nodeKeys = dashKeyPair('publicKey');
before(async () => {
  const made = await runCli(['keygen', '--out', keyDir, 'worker']);
  assert.equal(made.code, 0, made.stderr);
  writeFileSync(join(keyDir, 'node.key'), formatKeyPair(nodeKeys), { mode: 0o600 });
  node = await startSingleNode({ TIDINGS_CURVE_SECRET_KEY_FILE: join(keyDir, 'node.key'), TIDINGS_CURVE_WORKER_KEYS_FILE: join(keyDir, 'worker.pub') });
});
after(async () => {
  await node?.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

test('docs/examples/publish.py publishes with pyzmq and a CURVE worker key; nothing is lost', async () => {
  const c = await TestClient.connect(node.url, 'py-reader');
  await c.call('subscribe', { channel: 'from-python' });
  const r = spawnSync('/usr/bin/python3', [example, node.publisher, 'from-python', '200', '--secret-key-file', join(keyDir, 'worker.key'), '--server-key', nodeKeys.publicKey], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
  await c.waitFor(() => c.messages('from-python').length === 201, 10000, '201 messages');
  const msgs = c.messages('from-python');
  assert.deepEqual(msgs.slice(0, 200).map((m) => (m.data as { n: number }).n), Array.from({ length: 200 }, (_, i) => i));
  assert.ok(msgs.slice(0, 200).every((m) => m.sender === 'python-worker'));
  assert.deepEqual(msgs[200]!.data, { type: 'omnibus', sender: 'legacy', payload: { n: 200 } });
  assert.equal(msgs[200]!.sender, 'legacy');
  c.close();
});
