/**
 * The attacks of issue 10, repeated against a cluster with CURVE keys, from
 * raw zeromq.js sockets on the same network: without a key, with a key the
 * cluster does not know, and with a worker's key where only node keys are
 * allowed. Each must fail while the same requests with the right keys work.
 * Then the limits: far-oversized frames to every bound address of a default
 * (no keys) node drop that peer and leave the director's memory flat; and a
 * node asked to bind off loopback without keys refuses to start.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Dealer, Publisher as ZmqPub, Subscriber, XSubscriber, curveKeyPair, type Socket } from 'zeromq';
import { startCluster, startSingleNode, runCli, sleep, type Cluster, type SingleNode } from '../helpers/processes.js';
import { curveCluster, type CurveCluster, type KeyPair } from '../helpers/curve.js';
import { TestClient } from '../helpers/client.js';
import { postJson } from '../helpers/http.js';
import { channelTopic, userTopic } from '../../src/cluster/topics.js';
import { encodePublish } from '../../src/cluster/wire.js';
import { CommandClient } from '../../src/zmq/command-client.js';
import { ErrorCodes, TidingsError } from '../../src/protocol/errors.js';
import { pino } from 'pino';

let keys: CurveCluster;
let cluster: Cluster;
const sockets: Socket[] = [];
const clients: TestClient[] = [];

before(async () => {
  keys = curveCluster(1);
  cluster = await startCluster(1, 1, {}, keys.env);
});
after(async () => {
  for (const s of sockets) s.close();
  for (const c of clients) c.close();
  await cluster?.stop();
  keys?.cleanup();
});

type KeyKind = 'no key' | 'wrong key' | 'worker key';

interface Attacker<S extends Socket> {
  socket: S;
  events: string[];
  received: number;
  label: string;
}

/** A raw socket as an attacker (or a legitimate peer) would make it, watching its handshake. */
function raw<S extends Socket>(socket: S, address: string, label: string, client: KeyPair | null, serverKey: string): Attacker<S> {
  sockets.push(socket);
  socket.linger = 0;
  const a: Attacker<S> = { socket, events: [], received: 0, label };
  socket.events.on('handshake', () => a.events.push('handshake'));
  socket.events.on('handshake:error:auth', () => a.events.push('handshake:error:auth'));
  socket.events.on('handshake:error:protocol', () => a.events.push('handshake:error:protocol'));
  socket.events.on('disconnect', () => a.events.push('disconnect'));
  if (client) {
    socket.curveServerKey = serverKey;
    socket.curvePublicKey = client.publicKey;
    socket.curveSecretKey = client.secretKey;
  }
  socket.connect(address);
  return a;
}

test('each attack of the issue fails against a CURVE cluster; the same requests with the right keys work', async () => {
  const node = cluster.nodes[0]!;
  const stranger = curveKeyPair();
  const kinds: Array<[KeyKind, KeyPair | null]> = [
    ['no key', null],
    ['wrong key', stranger],
    ['worker key', keys.worker],
  ];
  const targets = [
    { name: 'director', addr: cluster.director, serverKey: keys.director.publicKey },
    { name: 'node1', addr: node, serverKey: keys.nodes[0]!.publicKey },
  ];

  // The victims: bob on node1, subscribed to a private channel.
  const bob = await TestClient.connect(node.url, 'bob');
  clients.push(bob);
  await bob.call('subscribe', { channel: 'private' });

  const listeners: Attacker<Subscriber>[] = [];
  const publishers: Array<Attacker<ZmqPub> & { kind: KeyKind }> = [];
  const commanders: Array<Attacker<Dealer> & { kind: KeyKind }> = [];
  for (const t of targets) {
    for (const [kind, pair] of kinds) {
      const sub = raw(new Subscriber(), t.addr.subscriber, `${kind} on ${t.name} subscriber address`, pair, t.serverKey);
      sub.socket.subscribe(channelTopic('private'), userTopic('bob'), Buffer.alloc(0));
      listeners.push(sub);
      void (async () => {
        for await (const _ of sub.socket) sub.received++;
      })().catch(() => undefined);
      publishers.push({ ...raw(new ZmqPub(), t.addr.publisher, `${kind} on ${t.name} publisher address`, pair, t.serverKey), kind });
      const cmd = { ...raw(new Dealer(), t.addr.command, `${kind} on ${t.name} command address`, pair, t.serverKey), kind };
      commanders.push(cmd);
      void (async () => {
        for await (const _ of cmd.socket) cmd.received++;
      })().catch(() => undefined);
    }
  }
  // The control: node1's own key pair on the director's command address is answered.
  const nodeCmd = raw(new Dealer(), cluster.director.command, 'node key on director command address', keys.nodes[0]!, keys.director.publicKey);
  const nodeReplies: Buffer[][] = [];
  void (async () => {
    for await (const frames of nodeCmd.socket) nodeReplies.push(frames as Buffer[]);
  })().catch(() => undefined);

  // For two seconds: every attacker sends, and the cluster carries real traffic they try to read.
  const id = Buffer.from([0, 0, 0, 1]);
  for (let round = 0; round < 10; round++) {
    for (const p of publishers) {
      const frames = encodePublish({ target: 'user', name: 'bob', data: JSON.stringify({ attack: `${p.kind} ${p.label}` }), sender: 'billing', noHistory: false });
      void p.socket.send(frames).catch(() => undefined);
    }
    for (const c of commanders) {
      for (const [method, body] of [
        ['publish', { channel: 'private', data: { attack: c.label }, sender: 'admin' }],
        ['history', { channel: 'private' }],
        ['debug_subscribers', {}],
      ] as const) {
        if (c.socket.writable) void c.socket.send([id, Buffer.from(method), Buffer.from(JSON.stringify(body))]).catch(() => undefined);
      }
    }
    if (round === 0) void nodeCmd.socket.send([id, Buffer.from('ping'), Buffer.from('{}')]);
    const r = await postJson(`${cluster.director.http}/api/publish`, { channel: 'private', data: { secret: round } });
    assert.equal(r.status, 200);
    await postJson(`${cluster.director.http}/api/publish`, { users: ['bob'], data: { dm: round } });
    await sleep(200);
  }
  await bob.waitFor(() => bob.messages('private').length >= 10, 5000, 'bob gets the private channel');

  for (const l of listeners) {
    assert.equal(l.received, 0, `${l.label} read nothing`);
    assert.ok(!l.events.includes('handshake'), `${l.label} was refused (${l.events.join(',')})`);
  }
  for (const a of [...listeners, ...publishers, ...commanders].filter((x) => x.label.startsWith('wrong key') || (x.label.startsWith('worker key') && !x.label.includes('publisher')))) {
    assert.ok(a.events.includes('handshake:error:auth'), `${a.label}: the ZAP handler refused the key (${a.events.join(',')})`);
  }
  for (const c of commanders) assert.equal(c.received, 0, `${c.label} got no reply`);
  assert.ok(nodeReplies.length >= 1 && nodeReplies[0]![1]!.toString() === 'ok', 'a node key is answered on the command address');

  // Only a worker key publishes, and only on publisher addresses: bob got its two kinds of message, nothing else.
  const attacks = bob.pushes.map((p) => (p.data as { attack?: string } | undefined)?.attack).filter((x): x is string => typeof x === 'string');
  assert.ok(attacks.length > 0, 'the worker key published to bob');
  assert.ok(attacks.every((a) => a.startsWith('worker key') && a.includes('publisher address')), `only worker-key publishes arrived: ${[...new Set(attacks)].join('; ')}`);
  assert.ok(!bob.messages('private').some((m) => (m.data as { attack?: string }).attack), 'no command-address publish as admin reached the channel');
  for (const p of publishers.filter((x) => x.kind === 'worker key')) assert.ok(p.events.includes('handshake'), `${p.label} was admitted`);
});

test('with CURVE, a worker key that sends a far-oversized frame is dropped; the director keeps serving', async () => {
  const w = raw(new ZmqPub(), cluster.director.publisher, 'worker', keys.worker, keys.director.publicKey);
  const bob = await TestClient.connect(cluster.nodes[0]!.url, 'bob2');
  clients.push(bob);
  await bob.call('subscribe', { channel: 'after-oversize' });
  const deadline = Date.now() + 5000;
  while (!w.events.includes('handshake') && Date.now() < deadline) await sleep(20);
  // 8 MiB against a limit of max_message_size + 64 KiB: libzmq cuts the peer off at the frame header.
  await w.socket.send(encodePublish({ target: 'channel', name: 'after-oversize', data: JSON.stringify('x'.repeat(8 << 20)), sender: null, noHistory: false }));
  while (!w.events.includes('disconnect') && Date.now() < deadline) await sleep(20);
  assert.ok(w.events.includes('disconnect'), `the oversized peer was dropped (${w.events.join(',')})`);
  const r = await runCli(['publish', '--channel', 'after-oversize', '--data', '{"ok":true}', '--publisher-address', cluster.director.publisher, ...keys.workerArgs(keys.director)]);
  assert.equal(r.code, 0, r.stderr);
  await bob.waitFor(() => bob.messages('after-oversize').length === 1, 5000, 'the next message');
  assert.deepEqual(bob.messages('after-oversize')[0]!.data, { ok: true });
});

test("Tidings' own command sender refuses a request above its link limit where it is made; the link stays up", async () => {
  const link = { curve: { ...keys.nodes[0]!, serverKey: keys.director.publicKey }, maxMessageSize: 4096 };
  const client = new CommandClient({ address: cluster.director.command, timeoutMs: 5000, maxInFlight: 10, highWaterMark: 100, link, log: pino({ level: 'silent' }) });
  client.start();
  try {
    await assert.rejects(client.request('publish', { channel: 'big', data: 'x'.repeat(8192) }), (err: unknown) => err instanceof TidingsError && err.code === ErrorCodes.PAYLOAD_TOO_LARGE.code);
    const pong = await client.request<{ time: number }>('ping', {});
    assert.equal(typeof pong.time, 'number', 'the same link still answers');
  } finally {
    await client.stop();
  }
});

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

test('a 256 MiB frame to each bound address of a default node drops that peer; the director stays flat and keeps serving', async () => {
  let single: SingleNode | null = null;
  try {
    single = await startSingleNode();
    const c = await TestClient.connect(single.url, 'watcher');
    clients.push(c);
    await c.call('subscribe', { channel: 'alive' });
    const before = rssBytes(single.proc.pid);
    const big = Buffer.alloc(256 << 20, 0x61);
    const peers = [
      raw(new ZmqPub(), single.publisher, 'publisher address', null, ''),
      raw(new XSubscriber(), single.subscriber, 'subscriber address', null, ''),
      raw(new Dealer(), single.command, 'command address', null, ''),
    ];
    for (const p of peers) {
      const deadline = Date.now() + 5000;
      while (!p.events.includes('handshake') && Date.now() < deadline) await sleep(20);
      void p.socket.send(big).catch(() => undefined);
      while (!p.events.includes('disconnect') && Date.now() < deadline) await sleep(20);
      assert.ok(p.events.includes('disconnect'), `the node dropped the peer on its ${p.label} (${p.events.join(',')})`);
      p.socket.close();
    }
    await sleep(300);
    const grown = rssBytes(single.proc.pid) - before;
    assert.ok(grown < 32 << 20, `director RSS grew by ${(grown / 1048576).toFixed(1)} MiB (before ${(before / 1048576).toFixed(1)} MiB)`);
    const r = await postJson(`${single.http}/api/publish`, { channel: 'alive', data: { still: 'serving' } });
    assert.equal(r.status, 200);
    await c.waitFor(() => c.messages('alive').length === 1, 5000, 'a message after the attack');
    process.stdout.write(`# director RSS ${(before / 1048576).toFixed(1)} MiB, after three 256 MiB frames +${(grown / 1048576).toFixed(1)} MiB\n`);
  } finally {
    await single?.stop();
  }
});

test('a node asked to bind or connect off loopback without keys refuses to start (exit 2, one line naming the setting)', async () => {
  for (const args of [
    ['--publisher-address', 'tcp://0.0.0.0:4244'],
    ['--no-director', '--forwarder', '--director-subscriber-address', 'tcp://director:4243', '--director-publisher-address', 'tcp://127.0.0.1:4244', '--director-command-address', 'tcp://127.0.0.1:4245'],
  ]) {
    const r = await runCli(['serve', ...args]);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^tidings: invalid setting curve_secret_key \(TIDINGS_CURVE_SECRET_KEY\): required because (publisher_address tcp:\/\/0\.0\.0\.0:4244|director_subscriber_address tcp:\/\/director:4243) is not a loopback address/);
    assert.match(lines[0]!, /zmq_insecure/);
  }
});

test('tidings keygen prints a Z85 key pair as ZeroMQ\'s curve_keygen does', async () => {
  const r = await runCli(['keygen']);
  assert.equal(r.code, 0, r.stderr);
  const m = /^== CURVE PUBLIC KEY ==\n(.{40})\n== CURVE SECRET KEY ==\n(.{40})\n$/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const { publicKeyOf } = await import('../../src/zmq/keys.js');
  assert.equal(publicKeyOf(m[2]!), m[1]);
});
