/**
 * docker-compose.yml, run without Docker: every service as a local process
 * with that service's command and environment, each on its own network host,
 * its named volumes as temporary directories: a network namespace (needs root
 * and iproute2; `.ci/run` installs iproute2). Where namespaces are unavailable
 * the test fails, unless TIDINGS_COMPOSE_TOPOLOGY=auto (fall back to a 127.x
 * address per service) or =loopback (always 127.x addresses) is set: see
 * topologyPlan in test/helpers/compose.ts. The one-shot keygen service writes
 * the CURVE keys, every ZeroMQ link runs with them, and the sample worker's
 * ticks must reach websocket clients on both nodes while an eavesdropper on
 * the same network, without a key, reads nothing.
 * docker-compose.ha.yml the same way, keys included: two directors sharing
 * the director key pair, the active one killed with -9.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { readCompose, makeTopology, withVolumes, type Topology } from '../helpers/compose.js';
import { CLI } from '../helpers/processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const probeScript = join(here, '..', 'helpers', 'probe-client.js');
const haProbe = join(here, '..', 'helpers', 'ha-probe.js');
const eavesdropScript = join(here, '..', 'helpers', 'zmq-eavesdropper.js');
const procs: ChildProcess[] = [];
let topology: Topology | null = null;
let haTopology: Topology | null = null;
const haCleanup: Array<() => void> = [];
const keysDir = mkdtempSync(join(tmpdir(), 'tidings-compose-keys-'));

after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  topology?.teardown();
  haTopology?.teardown();
  for (const c of haCleanup) c();
  rmSync(keysDir, { recursive: true, force: true });
});

function collect(p: ChildProcess): () => string {
  let out = '';
  p.stdout?.on('data', (d) => (out += d));
  p.stderr?.on('data', (d) => (out += d));
  return () => out;
}

async function until(pred: () => boolean, ms: number, what: string, log: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}\n${log().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('the compose cluster delivers the sample worker\'s messages to clients on both nodes', async () => {
  const declared = readCompose(join(root, 'docker-compose.yml'), { TIDINGS_DEVELOPMENT: 'true' }) // its published secrets, allowed for the test;
  assert.deepEqual(declared.map((s) => s.name).sort(), ['director', 'keygen', 'node1', 'node2', 'worker']);
  // No ZeroMQ port leaves the compose network: only websocket/HTTP ports are published.
  for (const s of declared) {
    for (const p of s.ports) assert.ok(!/(^|:)424[345](\/tcp)?$/.test(p), `${s.name} publishes ZeroMQ port ${p}`);
  }
  const services = declared.map((s) => withVolumes(s, new Map([['keys', keysDir]])));
  const byName = new Map(services.map((s) => [s.name, s]));
  assert.equal(byName.get('node1')!.environment['TIDINGS_FORWARDER_ENABLED'], 'true');
  assert.equal(byName.get('node1')!.environment['TIDINGS_WORKERS'], '2');
  assert.equal(byName.get('director')!.environment['TIDINGS_EDGE_ENABLED'], 'false');
  assert.equal(byName.get('director')!.environment['TIDINGS_SUBSCRIBER_ADDRESS'], 'tcp://0.0.0.0:4243');
  for (const n of ['director', 'node1', 'node2', 'worker']) assert.ok(byName.get(n)!.environment['TIDINGS_CURVE_SECRET_KEY_FILE'], `${n} has a CURVE key`);

  topology = makeTopology([...services.map((s) => s.name), 'client']);
  const logs = new Map<string, () => string>();
  const allLogs = (): string => [...logs].map(([n, l]) => `--- ${n} (${topology!.kind})\n${l().slice(-1500)}`).join('\n');
  const start = (name: string): void => {
    const s = byName.get(name)!;
    const p = topology!.spawn(name, [CLI, ...s.command], { PATH: process.env['PATH'] ?? '', ...s.environment });
    procs.push(p);
    logs.set(name, collect(p));
  };
  // The one-shot keygen service runs first (compose: service_completed_successfully).
  start('keygen');
  const keygen = procs[procs.length - 1]!;
  const keygenCode = keygen.exitCode ?? (await new Promise<number | null>((r) => keygen.once('exit', (code) => r(code))));
  assert.equal(keygenCode, 0, `keygen:\n${allLogs()}`);
  start('director');
  await until(() => /node ready/.test(logs.get('director')!()), 20000, 'director ready', allLogs);
  assert.match(logs.get('director')!(), /"curve":true[^\n]*"director listening"/, 'the director binds 0.0.0.0 with CURVE');
  // Someone else on the network listens on the director's subscriber address, without a key, until the end.
  const eavesdropper = topology.spawn('client', [eavesdropScript, `tcp://${topology.kind === 'netns' ? 'director' : topology.addressOf('director')}:4243`, '120000'], { PATH: process.env['PATH'] ?? '' });
  procs.push(eavesdropper);
  const heard = collect(eavesdropper);
  logs.set('eavesdropper', heard);
  const eavesdropped = new Promise<number | null>((r) => eavesdropper.once('exit', (code) => r(code)));
  start('node1');
  start('node2');
  await until(() => /node ready/.test(logs.get('node1')!()) && /node ready/.test(logs.get('node2')!()), 30000, 'nodes ready', allLogs);

  const secret = byName.get('node1')!.environment['TIDINGS_TOKEN_SECRET']!;
  const clients = ['node1', 'node2'].map((n) => {
    const p = topology!.spawn('client', [probeScript, `ws://${topology!.addressOf(n)}:4242/ws`, 'ticks', '5', '25000', secret], { PATH: process.env['PATH'] ?? '' });
    procs.push(p);
    const out = collect(p);
    logs.set(`client→${n}`, out);
    return { node: n, out, done: new Promise<number | null>((r) => p.once('exit', (code) => r(code))) };
  });
  // Each client has subscribed once its subscribe reply is printed.
  for (const c of clients) await until(() => /"id":2,"result"/.test(c.out()), 20000, `client on ${c.node} subscribed`, allLogs);
  start('worker');

  for (const c of clients) {
    const code = await c.done;
    assert.equal(code, 0, `client on ${c.node} got 5 ticks:\n${allLogs()}`);
    const ticks = c.out().split('\n').filter((l) => l.includes('"type":"message"')).map((l) => JSON.parse(l));
    assert.equal(ticks.length, 5);
    const offsets = ticks.map((t) => t.offset);
    assert.deepEqual(offsets, Array.from({ length: 5 }, (_, i) => offsets[0] + i), 'consecutive offsets');
    assert.ok(ticks.every((t) => t.channel === 'ticks' && typeof t.data.tick === 'number' && /^ticker@/.test(t.sender)));
    const reply = JSON.parse(c.out().split('\n').find((l) => l.includes('"id":1,"result"'))!);
    assert.match(reply.result.node, new RegExp(`^${c.node}/e[01]$`), 'served by an edge worker of that node');
  }
  eavesdropper.kill('SIGTERM');
  assert.equal(await eavesdropped, 0, allLogs());
  const overheard = JSON.parse(heard().trim().split('\n').pop()!) as { received: number; events: string[] };
  assert.equal(overheard.received, 0, 'a process without a key reads nothing on the director\'s subscriber address');
  assert.ok(!overheard.events.includes('handshake'), `no handshake without a key (${overheard.events.join(',')})`);
  process.stdout.write(`# compose topology: ${topology.kind}\n`);
});

test('docker-compose.ha.yml with CURVE keys: kill -9 of the active director, the standby takes over, no acknowledged message lost', async () => {
  const declared = readCompose(join(root, 'docker-compose.ha.yml'), { TIDINGS_DEVELOPMENT: 'true' }); // its published secrets, allowed for the test
  assert.deepEqual(declared.map((s) => s.name).sort(), ['director-a', 'director-b', 'keygen', 'node1', 'node2', 'redis', 'worker']);
  for (const s of declared) {
    for (const p of s.ports) assert.ok(!/(^|:)424[345](\/tcp)?$/.test(p), `${s.name} publishes ZeroMQ port ${p}`);
  }
  const haKeysDir = mkdtempSync(join(tmpdir(), 'tidings-compose-ha-keys-'));
  const redisDir = mkdtempSync(join(tmpdir(), 'tidings-compose-redis-'));
  haCleanup.push(() => rmSync(redisDir, { recursive: true, force: true }), () => rmSync(haKeysDir, { recursive: true, force: true }));
  const services = declared.map((s) => withVolumes(s, new Map([['keys', haKeysDir], ['redis-data', redisDir]])));
  const byName = new Map(services.map((s) => [s.name, s]));
  assert.equal(byName.get('director-a')!.environment['TIDINGS_STATE_ENGINE'], 'redis');
  assert.match(byName.get('node1')!.environment['TIDINGS_DIRECTOR_COMMAND_ADDRESS']!, /director-a:4245,tcp:\/\/director-b:4245/);
  for (const n of ['director-a', 'director-b', 'node1', 'node2', 'worker']) assert.ok(byName.get(n)!.environment['TIDINGS_CURVE_SECRET_KEY_FILE'], `${n} has a CURVE key`);
  // The directors share one key pair; nodes and the worker check its public key on either.
  assert.equal(byName.get('director-a')!.environment['TIDINGS_CURVE_SECRET_KEY_FILE'], byName.get('director-b')!.environment['TIDINGS_CURVE_SECRET_KEY_FILE']);
  for (const n of ['node1', 'node2']) assert.equal(byName.get(n)!.environment['TIDINGS_CURVE_DIRECTOR_KEY_FILE'], join(haKeysDir, 'director.pub'));
  assert.equal(byName.get('worker')!.environment['TIDINGS_CURVE_SERVER_KEY_FILE'], join(haKeysDir, 'director.pub'));

  const topo = makeTopology([...services.map((s) => s.name), 'client'], undefined, undefined, 'h');
  haTopology = topo;
  const logs = new Map<string, () => string>();
  const allLogs = (): string => [...logs].map(([n, l]) => `--- ${n} (${topo.kind})\n${l().slice(-1500)}`).join('\n');
  const running = new Map<string, ChildProcess>();
  const start = (name: string): ChildProcess => {
    const s = byName.get(name)!;
    const p =
      name === 'redis'
        ? topo.spawnProgram(name, s.command[0]!, [...s.command.slice(1), '--dir', redisDir])
        : topo.spawn(name, [CLI, ...s.command], { PATH: process.env['PATH'] ?? '', ...s.environment });
    procs.push(p);
    running.set(name, p);
    logs.set(`${name}#${procs.length}`, collect(p));
    return p;
  };
  const logOf = (name: string): string => [...logs].filter(([n]) => n.startsWith(`${name}#`)).map(([, l]) => l()).join('');
  // The one-shot keygen service runs first (compose: service_completed_successfully).
  const keygen = start('keygen');
  const keygenCode = keygen.exitCode ?? (await new Promise<number | null>((r) => keygen.once('exit', (code) => r(code))));
  assert.equal(keygenCode, 0, `keygen:\n${allLogs()}`);
  start('redis');
  await new Promise((r) => setTimeout(r, 300));
  start('director-a');
  await until(() => /director listening/.test(logOf('director-a')), 20000, 'director-a active', allLogs);
  assert.match(logOf('director-a'), /"curve":true[^\n]*"director listening"/, 'director-a binds 0.0.0.0 with CURVE');
  start('director-b');
  start('node1');
  start('node2');
  await until(() => /director standing by/.test(logOf('director-b')), 20000, 'director-b standing by', allLogs);
  await until(() => ['node1', 'node2'].every((n) => /node ready/.test(logOf(n)) && /following the active director/.test(logOf(n))), 30000, 'nodes ready', allLogs);

  const secret = byName.get('node1')!.environment['TIDINGS_TOKEN_SECRET']!;
  const probe = (args: string[]): (() => string) => {
    const p = topo.spawn('client', [haProbe, ...args], { PATH: process.env['PATH'] ?? '' });
    procs.push(p);
    const out = collect(p);
    logs.set(`client ${args[0]} ${args[1]} ${args[2]}`, out);
    return out;
  };
  const lines = (out: () => string): Array<Record<string, number | string | object>> => out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const subs = ['node1', 'node2'].map((n) => probe(['sub', `ws://${topo.addressOf(n)}:4242/ws`, 'ha', secret]));
  const ticks = probe(['sub', `ws://${topo.addressOf('node1')}:4242/ws`, 'ticks', secret]);
  for (const s of [...subs, ticks]) await until(() => /"subscribed"/.test(s()), 20000, 'subscribed', allLogs);
  // The sample worker publishes straight to the directors, with its worker key and the directors' shared key.
  start('worker');
  await until(() => lines(ticks).filter((l) => 'offset' in l).length >= 3, 20000, 'ticks through director-a', allLogs);
  const pub = probe(['pub', `ws://${topo.addressOf('node2')}:4242/ws`, 'ha', secret, '50']);
  await until(() => lines(pub).filter((l) => 'ack' in l).length >= 50, 20000, 'acknowledged publishes', allLogs);

  const killedAt = Date.now();
  running.get('director-a')!.kill('SIGKILL');
  await until(() => /director listening/.test(logOf('director-b')), 10000, 'director-b takes over', allLogs);
  const takeoverMs = Date.now() - killedAt;
  assert.match(logOf('director-b'), /"curve":true[^\n]*"director listening"/, 'director-b binds with CURVE on taking over');
  const ticksBefore = lines(ticks).filter((l) => 'offset' in l).length;
  const acksBefore = lines(pub).filter((l) => 'ack' in l).length;
  await until(() => lines(pub).filter((l) => 'ack' in l).length >= acksBefore + 50, 15000, 'publishing after the takeover', allLogs);
  const acked = lines(pub).filter((l) => 'ack' in l).map((l) => l['offset'] as number);
  await until(() => subs.every((s) => { const got = new Set(lines(s).map((l) => l['offset'])); return acked.every((o) => got.has(o)); }), 10000, 'every acknowledged message delivered', allLogs).catch(() => undefined);
  for (const [i, s] of subs.entries()) {
    const offsets = lines(s).filter((l) => 'offset' in l).map((l) => l['offset'] as number);
    const got = new Set(offsets);
    const missing = acked.filter((o) => !got.has(o));
    process.stdout.write(`# compose HA (${topo.kind}) node${i + 1}: takeover ${takeoverMs} ms, acknowledged ${acked.length}, delivered ${offsets.length}, missing ${missing.length}, duplicated ${offsets.length - got.size}\n`);
    assert.deepEqual(missing, [], `node${i + 1} missed acknowledged offsets:\n${allLogs()}`);
    assert.equal(offsets.length, got.size, 'no duplicate');
    assert.ok(offsets.every((o, k) => k === 0 || o > offsets[k - 1]!), 'in order');
  }
  // The worker's publisher socket found director-b (CURVE with the shared key): ticks flow again.
  await until(() => lines(ticks).filter((l) => 'offset' in l).length >= ticksBefore + 3, 15000, 'ticks through director-b', allLogs);
  assert.ok(takeoverMs < 3000 + 500, `takeover ${takeoverMs} ms`);
});
