/**
 * docker-compose.yml, run without Docker: every service as a local process
 * with that service's command and environment, each on its own network host
 * (a network namespace, or a 127.x address where namespaces are unavailable).
 * The sample worker's ticks must reach websocket clients on both nodes.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readCompose, makeTopology, type Topology } from '../helpers/compose.js';
import { CLI } from '../helpers/processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const probeScript = join(here, '..', 'helpers', 'probe-client.js');
const haProbe = join(here, '..', 'helpers', 'ha-probe.js');
const procs: ChildProcess[] = [];
let topology: Topology | null = null;
let haTopology: Topology | null = null;
const haCleanup: Array<() => void> = [];

after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  topology?.teardown();
  haTopology?.teardown();
  for (const c of haCleanup) c();
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
  const services = readCompose(join(root, 'docker-compose.yml'), {});
  assert.deepEqual(services.map((s) => s.name).sort(), ['director', 'node1', 'node2', 'worker']);
  const byName = new Map(services.map((s) => [s.name, s]));
  assert.equal(byName.get('node1')!.environment['TIDINGS_FORWARDER_ENABLED'], 'true');
  assert.equal(byName.get('node1')!.environment['TIDINGS_WORKERS'], '2');
  assert.equal(byName.get('director')!.environment['TIDINGS_EDGE_ENABLED'], 'false');

  topology = makeTopology([...services.map((s) => s.name), 'client']);
  const logs = new Map<string, () => string>();
  const allLogs = (): string => [...logs].map(([n, l]) => `--- ${n} (${topology!.kind})\n${l().slice(-1500)}`).join('\n');
  const start = (name: string): void => {
    const s = byName.get(name)!;
    const p = topology!.spawn(name, [CLI, ...s.command], { PATH: process.env['PATH'] ?? '', ...s.environment });
    procs.push(p);
    logs.set(name, collect(p));
  };
  start('director');
  await until(() => /node ready/.test(logs.get('director')!()), 20000, 'director ready', allLogs);
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
  process.stdout.write(`# compose topology: ${topology.kind}\n`);
});

test('docker-compose.ha.yml: kill -9 of the active director, the standby takes over, no acknowledged message lost', async () => {
  const services = readCompose(join(root, 'docker-compose.ha.yml'), {});
  assert.deepEqual(services.map((s) => s.name).sort(), ['director-a', 'director-b', 'node1', 'node2', 'redis']);
  const byName = new Map(services.map((s) => [s.name, s]));
  assert.equal(byName.get('director-a')!.environment['TIDINGS_STATE_ENGINE'], 'redis');
  assert.match(byName.get('node1')!.environment['TIDINGS_DIRECTOR_COMMAND_ADDRESS']!, /director-a:4245,tcp:\/\/director-b:4245/);

  const topo = makeTopology([...services.map((s) => s.name), 'client'], 'h');
  haTopology = topo;
  const redisDir = mkdtempSync(join(tmpdir(), 'tidings-compose-redis-'));
  haCleanup.push(() => rmSync(redisDir, { recursive: true, force: true }));
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
  start('redis');
  await new Promise((r) => setTimeout(r, 300));
  start('director-a');
  await until(() => /director listening/.test(logOf('director-a')), 20000, 'director-a active', allLogs);
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
    logs.set(`client ${args[0]} ${args[1]}`, out);
    return out;
  };
  const lines = (out: () => string): Array<Record<string, number | string | object>> => out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const subs = ['node1', 'node2'].map((n) => probe(['sub', `ws://${topo.addressOf(n)}:4242/ws`, 'ha', secret]));
  for (const s of subs) await until(() => /"subscribed"/.test(s()), 20000, 'subscribed', allLogs);
  const pub = probe(['pub', `ws://${topo.addressOf('node2')}:4242/ws`, 'ha', secret, '50']);
  await until(() => lines(pub).filter((l) => 'ack' in l).length >= 50, 20000, 'acknowledged publishes', allLogs);

  const killedAt = Date.now();
  running.get('director-a')!.kill('SIGKILL');
  await until(() => /director listening/.test(logOf('director-b')), 10000, 'director-b takes over', allLogs);
  const takeoverMs = Date.now() - killedAt;
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
  assert.ok(takeoverMs < 3000 + 500, `takeover ${takeoverMs} ms`);
});
