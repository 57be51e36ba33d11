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
const eavesdropScript = join(here, '..', 'helpers', 'zmq-eavesdropper.js');
const procs: ChildProcess[] = [];
let topology: Topology | null = null;
const keysDir = mkdtempSync(join(tmpdir(), 'tidings-compose-keys-'));

after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  topology?.teardown();
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
