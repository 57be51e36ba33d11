/** CURVE keys (Z85, key files) and the CURVE part of the configuration, from strings and objects. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { curveKeyPair } from 'zeromq';
import { formatKeyPair, formatPublicKey, isCurveKey, parseKeyText, publicKeyOf, z85Decode, z85Encode } from '../../src/zmq/keys.js';
import { ConfigError, redactConfig, resolveConfig, type Sources } from '../../src/config/resolve.js';
import { isLoopbackAddress } from '../../src/config/curve.js';
import { ingressLimit, linkLimit } from '../../src/zmq/security.js';
import { splitSnapshot } from '../../src/edge/state-link.js';

test('Z85 as in ZeroMQ RFC 32: the spec vector, round trips, bad text', () => {
  const hello = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
  assert.equal(z85Encode(hello), 'HelloWorld');
  assert.deepEqual(z85Decode('HelloWorld'), hello);
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  assert.deepEqual(z85Decode(z85Encode(all)), all);
  assert.deepEqual(z85Decode(z85Encode(Buffer.from([255, 255, 255, 255]))), Buffer.from([255, 255, 255, 255]));
  assert.equal(z85Decode('Hello Worl'), null, 'space is not Z85');
  assert.equal(z85Decode('%%%%%'), null, 'above 2^32');
  assert.equal(z85Decode('abcd'), null, 'not a multiple of 5');
  assert.throws(() => z85Encode(Buffer.from([1, 2, 3])), RangeError);
});

test("a secret key's public key is the one ZeroMQ generated with it", () => {
  for (let i = 0; i < 5; i++) {
    const pair = curveKeyPair();
    assert.ok(isCurveKey(pair.publicKey) && isCurveKey(pair.secretKey));
    assert.equal(publicKeyOf(pair.secretKey), pair.publicKey);
  }
  assert.ok(!isCurveKey('short'));
  assert.throws(() => publicKeyOf('x'.repeat(39)), RangeError);
});

test('key files: keygen layout by section, bare keys, comments; anything else is an error', () => {
  const a = curveKeyPair();
  const b = curveKeyPair();
  assert.deepEqual(parseKeyText(formatKeyPair(a)), { publicKeys: [a.publicKey], secretKeys: [a.secretKey], bareKeys: [] });
  assert.deepEqual(parseKeyText(formatPublicKey(a.publicKey) + formatPublicKey(b.publicKey)).publicKeys, [a.publicKey, b.publicKey]);
  assert.deepEqual(parseKeyText(`# workers\n\n${a.publicKey}\r\n  ${b.publicKey}  \n`).bareKeys, [a.publicKey, b.publicKey]);
  assert.throws(() => parseKeyText(`${a.publicKey}\nnot a key\n`), /line 2 is not a Z85 CURVE key/);
});

function rejects(sources: Sources, setting: string, pattern: RegExp): void {
  assert.throws(
    () => resolveConfig(sources),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.setting, setting);
      assert.match(err.message, pattern);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    },
  );
}

test('safe by default: loopback needs no keys; any other address needs keys or zmq_insecure', () => {
  assert.equal(resolveConfig({}).curve, null);
  for (const a of ['tcp://127.0.0.1:1', 'tcp://127.1.2.3:1', 'tcp://localhost:1', 'tcp://[::1]:1', 'ipc:///tmp/x', 'inproc://x']) assert.ok(isLoopbackAddress(a), a);
  for (const a of ['tcp://0.0.0.0:1', 'tcp://*:1', 'tcp://10.0.0.1:1', 'tcp://director:1', 'tcp://[::]:1', 'tcp://127.0.0.1.evil:1']) assert.ok(!isLoopbackAddress(a), a);
  rejects({ env: { TIDINGS_COMMAND_ADDRESS: 'tcp://0.0.0.0:4245' } }, 'curve_secret_key', /curve_secret_key \(TIDINGS_CURVE_SECRET_KEY\): required because command_address tcp:\/\/0\.0\.0\.0:4245 is not a loopback address.*zmq_insecure=true/);
  const forwarder = { TIDINGS_FORWARDER_ENABLED: 'true', TIDINGS_DIRECTOR_ENABLED: 'false', TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: 'tcp://127.0.0.1:1', TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: 'tcp://127.0.0.1:2', TIDINGS_DIRECTOR_COMMAND_ADDRESS: 'tcp://director:3' };
  rejects({ env: forwarder }, 'curve_secret_key', /director_command_address tcp:\/\/director:3/);
  const insecure = resolveConfig({ env: { ...forwarder, TIDINGS_ZMQ_INSECURE: 'true' } });
  assert.equal(insecure.curve, null);
  // Several directors: every address of every list counts, not only the first director's.
  const group = {
    TIDINGS_FORWARDER_ENABLED: 'true',
    TIDINGS_DIRECTOR_ENABLED: 'false',
    TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: 'tcp://127.0.0.1:1,tcp://127.0.0.2:1',
    TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: 'tcp://127.0.0.1:2,tcp://127.0.0.2:2',
    TIDINGS_DIRECTOR_COMMAND_ADDRESS: 'tcp://127.0.0.1:3,tcp://127.0.0.2:3',
  };
  assert.equal(resolveConfig({ env: group }).curve, null, 'all on loopback: no keys needed');
  rejects({ env: { ...group, TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: 'tcp://127.0.0.1:1,tcp://director-b:1' } }, 'curve_secret_key', /director_subscriber_address tcp:\/\/director-b:1 is not a loopback address/);
  rejects({ env: { ...group, TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: 'tcp://127.0.0.1:2,tcp://10.0.0.2:2' } }, 'curve_secret_key', /director_publisher_address tcp:\/\/10\.0\.0\.2:2/);
  rejects({ env: { ...group, TIDINGS_DIRECTOR_COMMAND_ADDRESS: 'tcp://127.0.0.1:3,tcp://director-b:3' } }, 'curve_secret_key', /director_command_address tcp:\/\/director-b:3/);
  const keyed = resolveConfig({ env: { ...group, TIDINGS_DIRECTOR_COMMAND_ADDRESS: 'tcp://127.0.0.1:3,tcp://director-b:3', TIDINGS_CURVE_SECRET_KEY: curveKeyPair().secretKey } });
  assert.ok(keyed.curve, 'with keys the same lists start');
});

test('CURVE settings inline: public key derived, own key admitted as a node, director key defaults to own', () => {
  const me = curveKeyPair();
  const other = curveKeyPair();
  const worker = curveKeyPair();
  const c = resolveConfig({ env: { TIDINGS_SUBSCRIBER_ADDRESS: 'tcp://0.0.0.0:4243', TIDINGS_CURVE_SECRET_KEY: me.secretKey, TIDINGS_CURVE_NODE_KEYS: other.publicKey, TIDINGS_CURVE_WORKER_KEYS: worker.publicKey } });
  assert.deepEqual(c.curve, { publicKey: me.publicKey, secretKey: me.secretKey, directorKey: me.publicKey, nodeKeys: [me.publicKey, other.publicKey], workerKeys: [worker.publicKey] });
  assert.ok(Object.isFrozen(c.curve) && Object.isFrozen(c.curve!.nodeKeys));
  const r = redactConfig(c);
  assert.equal(r['curve_secret_key'], '[redacted]');
  assert.ok(!JSON.stringify(r).includes(me.secretKey), 'the secret key is never logged');
  const d = resolveConfig({ env: { TIDINGS_CURVE_SECRET_KEY: me.secretKey, TIDINGS_CURVE_DIRECTOR_KEY: other.publicKey } });
  assert.equal(d.curve!.directorKey, other.publicKey);
});

test('CURVE settings from files: keygen files, lists of .pub files; mistakes are named', () => {
  const me = curveKeyPair();
  const n1 = curveKeyPair();
  const n2 = curveKeyPair();
  const files: Record<string, string> = {
    '/k/me.key': formatKeyPair(me),
    '/k/me.bare': `${me.secretKey}\n`,
    '/k/n1.pub': formatPublicKey(n1.publicKey),
    '/k/n2.pub': formatPublicKey(n2.publicKey),
    '/k/n1.key': formatKeyPair(n1),
    '/k/two.pub': formatPublicKey(n1.publicKey) + formatPublicKey(n2.publicKey),
  };
  const readFile = (p: string): string => {
    if (!(p in files)) throw new Error(`ENOENT: ${p}`);
    return files[p]!;
  };
  const c = resolveConfig({ env: { TIDINGS_CURVE_SECRET_KEY_FILE: '/k/me.key', TIDINGS_CURVE_DIRECTOR_KEY_FILE: '/k/n1.pub', TIDINGS_CURVE_NODE_KEYS_FILE: '/k/n1.pub,/k/n2.pub' }, readFile });
  assert.equal(c.curve!.secretKey, me.secretKey);
  assert.equal(c.curve!.directorKey, n1.publicKey);
  assert.deepEqual(c.curve!.nodeKeys, [me.publicKey, n1.publicKey, n2.publicKey]);
  assert.equal(resolveConfig({ env: { TIDINGS_CURVE_SECRET_KEY_FILE: '/k/me.bare' }, readFile }).curve!.publicKey, me.publicKey);

  rejects({ env: { TIDINGS_CURVE_SECRET_KEY_FILE: '/k/none' }, readFile }, 'curve_secret_key_file', /cannot read \/k\/none/);
  rejects({ env: { TIDINGS_CURVE_SECRET_KEY_FILE: '/k/me.key' } }, 'curve_secret_key_file', /cannot read/);
  rejects({ env: { TIDINGS_CURVE_SECRET_KEY: me.secretKey, TIDINGS_CURVE_WORKER_KEYS_FILE: '/k/n1.key' }, readFile }, 'curve_worker_keys_file', /holds a secret key/);
  rejects({ env: { TIDINGS_CURVE_SECRET_KEY: me.secretKey, TIDINGS_CURVE_DIRECTOR_KEY_FILE: '/k/two.pub' }, readFile }, 'curve_director_key_file', /exactly one public key, found 2/);
  rejects({ env: { TIDINGS_CURVE_SECRET_KEY: me.secretKey, TIDINGS_CURVE_SECRET_KEY_FILE: '/k/me.key' }, readFile }, 'curve_secret_key', /not both/);
  rejects({ env: { TIDINGS_CURVE_SECRET_KEY: 'not-a-key' } }, 'curve_secret_key', /Z85 CURVE key/);
  rejects({ env: { TIDINGS_CURVE_SECRET_KEY: me.secretKey, TIDINGS_CURVE_NODE_KEYS: 'nope' } }, 'curve_node_keys', /Z85 CURVE key/);
  rejects({ env: { TIDINGS_CURVE_WORKER_KEYS: n1.publicKey } }, 'curve_worker_keys', /needs curve_secret_key/);
  rejects({ env: { TIDINGS_CURVE_SECRET_KEY: me.secretKey, TIDINGS_CURVE_NODE_KEYS: n1.publicKey, TIDINGS_CURVE_WORKER_KEYS: n1.publicKey } }, 'curve_worker_keys', /also a node key/);
});

test('message size limits follow max_message_size', () => {
  assert.equal(ingressLimit({ max_message_size: 65536 }), 131072);
  assert.equal(linkLimit({ max_message_size: 65536 }), 64 << 20);
  assert.ok(linkLimit({ max_message_size: 65536 }) < 256 << 20, 'a 256 MiB frame is refused everywhere by default');
});

test("an edge's presence snapshot too large for one command goes as a snapshot and then attach/join batches", () => {
  const entries = Array.from({ length: 50 }, (_, i) => ({ conn: `c${i}`, user: i % 2 ? `u${i}` : null, channels: ['a', 'b', 'c'] }));
  assert.deepEqual(splitSnapshot(entries, 1 << 20), [entries], 'fits: one snapshot');
  const [snapshot, ...batches] = splitSnapshot(entries, 400);
  assert.ok(snapshot.length > 0 && snapshot.length < 50);
  for (const b of batches) assert.ok(Buffer.byteLength(JSON.stringify(b)) <= 400 + 120, 'each batch within the budget (plus its brackets)');
  const events = batches.flat();
  const rest = entries.slice(snapshot.length);
  assert.deepEqual(
    events,
    rest.flatMap((e) => [{ op: 'attach', conn: e.conn, user: e.user }, ...e.channels.map((channel) => ({ op: 'join', conn: e.conn, channel }))]),
    'every connection past the snapshot, in order',
  );
});
