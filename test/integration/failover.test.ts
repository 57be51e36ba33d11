/**
 * Several directors on the redis engine (a real redis-server started here):
 * two directors, one active by lease, two forwarder nodes configured with
 * both directors' addresses, SDK subscribers on every node and a steady
 * acknowledged publisher. kill -9 of the active director, then SIGSTOP of the
 * next one past its lease: a standby takes over within the documented bound,
 * never two sequencers, and every acknowledged offset reaches every
 * subscriber once, in order, in the same epoch (clients recover with
 * recovered: true). Then a Redis restart with its append-only file.
 *
 * The whole group runs with CURVE, as a production one must: both directors
 * with the one shared director key pair (from files), each forwarder node with
 * its own pair; the role probes, the upstream sockets and the workers'
 * sockets are CURVE clients of every director, and follow the new active one.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startHaCluster, type HaCluster, type HaDirector } from '../helpers/ha-cluster.js';
import { sdkClient, SteadyPublisher, CountingSubscriber, type Acked } from '../helpers/steady.js';
import { sleep, runCli, API_KEY } from '../helpers/processes.js';
import type { TidingsClient } from '../../src/client/index.js';
import { Publisher } from '../../src/publisher/publisher.js';
import { TestClient } from '../helpers/client.js';
import { curveCluster, type CurveCluster } from '../helpers/curve.js';
import { CommandClient } from '../../src/zmq/command-client.js';
import { linkLimit, type ClientLink } from '../../src/zmq/security.js';
import { createLogger } from '../../src/log.js';

const CHANNEL = 'ha.steady';
/** The documented takeover bound with the default 2 s lease (docs/operations.md). */
const TAKEOVER_BOUND_MS = 3000;

let redis: RedisServer;
let keys: CurveCluster;
let cluster: HaCluster;
const clients: TidingsClient[] = [];
let subs: CountingSubscriber[] = [];
let pub: SteadyPublisher;

before(async () => {
  redis = await startRedis({ appendonly: true });
  keys = curveCluster(2);
  cluster = await startHaCluster(redis.url, 2, 2, 1, { TIDINGS_COMMAND_TIMEOUT: '2', TIDINGS_HISTORY_SIZE: '5000' }, keys);
  const [n1, n2] = cluster.nodes as [HaCluster['nodes'][0], HaCluster['nodes'][0]];
  const c1 = sdkClient([n1.url], 'ann');
  const c2 = sdkClient([n2.url], 'bob');
  const cp = sdkClient([n2.url], 'writer');
  clients.push(c1, c2, cp);
  await Promise.all(clients.map((c) => c.ready(10)));
  subs = [new CountingSubscriber(c1, 'ann@node1', CHANNEL), new CountingSubscriber(c2, 'bob@node2', CHANNEL)];
  await Promise.all(subs.map((s) => s.ready));
  pub = new SteadyPublisher(cp, CHANNEL, 100);
  pub.start();
});

after(async () => {
  await pub?.stop();
  for (const c of clients) c.disconnect();
  await cluster?.stop();
  await redis?.stop();
  keys?.cleanup();
});

/** Ask a director's command address for its role with these keys (null: no answer within a second). */
async function askRole(address: string, curve: ClientLink['curve']): Promise<{ active: boolean } | null> {
  const client = new CommandClient({ address, link: { curve, maxMessageSize: linkLimit({ max_message_size: 65536 }) }, timeoutMs: 1000, maxInFlight: 1, highWaterMark: 10, log: createLogger('silent') });
  client.start();
  try {
    return await client.request<{ active: boolean }>('role', {});
  } catch {
    return null;
  } finally {
    await client.stop();
  }
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

/** The time (ms) a director logged that it sequences, from its pino line. */
function listeningAt(d: HaDirector): number | null {
  for (const line of d.proc.text().split('\n')) {
    if (line.includes('"msg":"director listening"')) return Date.parse((JSON.parse(line) as { time: string }).time);
  }
  return null;
}

function check(acked: readonly Acked[], label: string): void {
  for (const s of subs) {
    const a = s.account(acked);
    process.stdout.write(`# ${label} ${s.name}: acknowledged ${acked.length}, delivered ${a.delivered}, missing ${a.missing.length}, duplicated ${a.duplicated}, reordered ${a.reordered}\n`);
    assert.deepEqual(a.missing, [], `${s.name}: acknowledged offsets missing`);
    assert.equal(a.duplicated, 0, `${s.name}: duplicated offsets`);
    assert.equal(a.reordered, 0, `${s.name}: reordered offsets`);
    assert.equal(a.epochs.length, 1, `${s.name}: one epoch across the failover (${a.epochs})`);
  }
}

test('paged history and recovery on the redis engine: 20 missed 60 KB messages (more than a 1 MiB page) recover in order; history() pages', async () => {
  const channel = 'ha.pages';
  const client = sdkClient([cluster.nodes[0]!.url], 'paula');
  clients.push(client);
  const sub = client.subscribe(channel);
  const got: number[] = [];
  const subscribed: Array<{ recovered: boolean; replayed: number }> = [];
  sub.on('message', (m) => got.push(m.offset));
  sub.on('subscribed', (e) => subscribed.push(e));
  await sub.ready(10);
  const start = sub.position!.offset;
  client.disconnect();
  const writer = clients[2]!;
  let last = { offset: 0, epoch: '' };
  for (let i = 0; i < 20; i++) last = await writer.publish(channel, { i, text: 'x'.repeat(60_000) });
  client.connect();
  await until(() => got.length >= 20, 20_000, 'the 20 missed messages');
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => start + 1 + i), 'every missed offset once, in order');
  assert.deepEqual(subscribed.map((e) => [e.recovered, e.replayed]), [[false, 0], [true, 20]]);
  const h = await client.history(channel, { limit: 20 });
  assert.deepEqual(h.messages.map((m) => m.offset), Array.from({ length: 20 }, (_, i) => start + 1 + i));
  assert.equal(h.messages.at(-1)!.epoch, last.epoch);
  // One server page holds about 1 MiB: the raw reply says it stopped there.
  const raw = (await client.call('history', { channel, limit: 20 })) as { more: boolean; available: number; messages: unknown[] };
  assert.equal(raw.more, true);
  assert.ok(raw.messages.length > 0 && raw.messages.length < 20, `one page holds ${raw.messages.length} messages`);
});

test('kill -9 of the active director: a standby takes over within 3 s; 0 missing, 0 duplicated, 0 reordered; presence right', async () => {
  const [a, b] = cluster.directors as [HaDirector, HaDirector];
  assert.equal((await cluster.active()).name, a.name);
  // CURVE everywhere: the active director binds with it, the standby's command address too, forwarders connect with it.
  assert.match(a.proc.text(), /"curve":true[^\n]*"director listening"/);
  assert.match(b.proc.text(), /"curve":true[^\n]*"director standing by for the lease"/);
  for (const n of cluster.nodes) assert.match(n.proc.text(), /"curve":true[^\n]*"forwarder running"/);
  // The standby answers the role probe of a node key checking the shared director key, and no one else.
  const node1 = keys.nodes[0]!;
  const nodeLink = { publicKey: node1.publicKey, secretKey: node1.secretKey, serverKey: keys.director.publicKey };
  const [asNode, asWorker, asStranger] = await Promise.all([
    askRole(b.command, nodeLink),
    askRole(b.command, { publicKey: keys.worker.publicKey, secretKey: keys.worker.secretKey, serverKey: keys.director.publicKey }),
    askRole(b.command, null),
  ]);
  assert.equal(asNode?.active, false, 'the standby answers a node key');
  assert.equal(asWorker, null, 'a worker key is refused on a command address');
  assert.equal(asStranger, null, 'a client without keys gets nothing');
  // A standby is not ready (its director answers 155), so load balancers send API calls to the active one.
  assert.equal((await fetch(`${a.http}/readyz`)).status, 200);
  assert.equal((await fetch(`${b.http}/readyz`)).status, 503);
  // A worker configured with every director's addresses publishes to the active one.
  // (Acknowledged publishes go over command addresses, which take node keys: this one runs with node1's pair.)
  const direct = new Publisher({
    address: cluster.directors.map((d) => d.publisher),
    commandAddress: cluster.directors.map((d) => d.command),
    timeoutMs: 3000,
    curve: { secretKey: node1.secretKey, serverKey: keys.director.publicKey },
  });
  direct.start();
  const d1 = await direct.publishAcked('ha.direct', { n: 1 });
  await until(() => pub.acked.length >= 100, 10000, '100 acknowledged publishes before the kill');
  // A client that leaves before the kill, with its last position, and comes back after the takeover.
  const away = await TestClient.connect(cluster.nodes[0]!.url, 'dora');
  const sub0 = await away.call('subscribe', { channel: CHANNEL });
  const leftAt = { offset: sub0.offset as number, epoch: sub0.epoch as string };
  away.close();
  const killedAt = Date.now();
  await a.proc.kill9();
  await b.proc.waitFor(/"msg":"director listening"/, 10000);
  const standbyActiveAt = listeningAt(b)!;
  // Presence is right from the new director's first answer: it loaded every connection record before answering.
  const res = await fetch(`${b.http}/api/presence`, { method: 'POST', headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' }, body: JSON.stringify({ channel: CHANNEL }) });
  const atTakeover = ((await res.json()) as { users: Array<{ user: string }> }).users.map((u) => u.user);
  assert.ok(['ann', 'bob'].every((u) => atTakeover.includes(u)), `presence at the takeover: ${atTakeover}`);
  await until(() => pub.firstAckSentAfter(killedAt) !== undefined, 10000, 'a publish acknowledged after the kill');
  const first = pub.firstAckSentAfter(killedAt)!;
  const takeover = first.ackAt - killedAt;
  process.stdout.write(`# kill -9: standby sequencing ${standbyActiveAt - killedAt} ms after the kill; first publish sent after the kill acknowledged ${takeover} ms after it\n`);
  assert.ok(standbyActiveAt - killedAt <= TAKEOVER_BOUND_MS, `standby active after ${standbyActiveAt - killedAt} ms`);
  assert.ok(takeover <= TAKEOVER_BOUND_MS + 500, `publishing resumed after ${takeover} ms`);
  // A second of steady publishing on the new director, then account for everything.
  await until(() => pub.acked.filter((x) => x.sentAt > first.sentAt).length >= 100, 10000, '100 more acknowledged publishes');
  const acked = [...pub.acked];
  await until(() => subs.every((s) => s.has(acked.map((x) => x.offset))), 10000, 'every subscriber has every acknowledged offset').catch(() => undefined);
  check(acked, 'kill -9');
  for (const s of subs) {
    const re = s.subscribed.slice(1);
    assert.ok(re.every((e) => e.recovered === true), `${s.name}: every resubscription recovered: ${JSON.stringify(re)}`);
  }
  // Presence after the takeover: both subscribers, as restored by the new director (or, for a connection that
  // came or went during the gap, as its edge re-sends its list once a director answers again).
  const presenceBy = Date.now() + 3000;
  let users: string[] = [];
  while (Date.now() < presenceBy) {
    users = (await clients[2]!.presence(CHANNEL)).users.map((u) => u.user).sort();
    if (users.join() === 'ann,bob') break;
    await sleep(100);
  }
  process.stdout.write(`# presence right ${Date.now() - killedAt} ms after the kill\n`);
  assert.deepEqual(users, ['ann', 'bob'], subs.map((x) => `${x.name}: ${x.events.join('; ')}`).join(' | '));
  // Back after the takeover: the same epoch, so the messages it missed across the director change are replayed.
  const back = await TestClient.connect(cluster.nodes[1]!.url, 'dora');
  const re = await back.call('subscribe', { channel: CHANNEL, recover: leftAt });
  back.close();
  process.stdout.write(`# back after the takeover: recovered ${re.recovered}, replayed ${re.replayed} from offset ${leftAt.offset}\n`);
  assert.equal(re.epoch, leftAt.epoch, 'the epoch survives the director change');
  assert.equal(re.recovered, true);
  assert.equal(re.replayed, re.offset - leftAt.offset, 'every message since it left');
  // The worker follows the new active director by itself (the first tries may land in the gap).
  let d2: { offset: number; epoch: string } | null = null;
  for (let i = 0; i < 20 && !d2; i++) d2 = await direct.publishAcked('ha.direct', { n: 2 }).catch(() => null);
  await direct.close();
  assert.deepEqual(d2, { offset: d1.offset + 1, epoch: d1.epoch }, 'the same stream, continued by the new director');
  // A backend worker with its worker key and both directors' publisher addresses (`tidings publish`) reaches the new one.
  const reader = await TestClient.connect(cluster.nodes[0]!.url, 'erin');
  await reader.call('subscribe', { channel: 'ha.worker' });
  const addresses = cluster.directors.map((d) => d.publisher).join(',');
  const cli = await runCli(['publish', '--channel', 'ha.worker', '--data', '{"from":"worker"}', '--publisher-address', addresses, ...keys.workerArgs(keys.director)]);
  assert.equal(cli.code, 0, cli.stderr);
  await reader.waitFor(() => reader.messages('ha.worker').length === 1, 10000, 'the worker\'s message through the new director');
  reader.close();
  // The killed director comes back as a standby.
  a.restart();
  await a.proc.waitFor(/"msg":"director standing by for the lease"/, 20000);
  await a.proc.waitFor(/"msg":"node ready"/, 20000);
});

test('SIGSTOP of the active director past its lease, then SIGCONT: one sequencer, the old one is fenced and exits; nothing lost', async () => {
  const paused = await cluster.active();
  const other = cluster.directors.find((d) => d !== paused)!;
  await other.proc.waitFor(/"msg":"director standing by for the lease"/, 20000);
  const fencedBefore = paused.fencedExits;
  const before = pub.acked.length;
  await until(() => pub.acked.length >= before + 50, 10000, 'publishing');
  const pausedProc = paused.proc;
  const stoppedAt = Date.now();
  process.kill(pausedProc.pid, 'SIGSTOP');
  try {
    await other.proc.waitFor(/"msg":"director listening"/, 10000);
    process.stdout.write(`# SIGSTOP: standby sequencing ${listeningAt(other)! - stoppedAt} ms after the stop\n`);
    assert.ok(listeningAt(other)! - stoppedAt <= TAKEOVER_BOUND_MS);
    await until(() => pub.acked.filter((x) => x.sentAt > stoppedAt).length >= 50, 10000, 'publishing on the new active');
  } finally {
    process.kill(pausedProc.pid, 'SIGCONT');
  }
  // The paused director wakes up, finds its lease gone and stops (exit 3: its supervisor restarts it as a standby).
  assert.equal(await pausedProc.wait(), 3);
  assert.match(pausedProc.text(), /director fenced/);
  await until(() => paused.fencedExits > fencedBefore, 5000, 'restarted by its supervisor');
  await paused.proc.waitFor(/"msg":"director standing by for the lease"/, 20000);
  await until(() => pub.acked.filter((x) => x.sentAt > Date.now() - 500).length >= 30, 10000, 'publishing after SIGCONT');
  const acked = [...pub.acked];
  await until(() => subs.every((s) => s.has(acked.map((x) => x.offset))), 10000, 'every subscriber has every acknowledged offset').catch(() => undefined);
  check(acked, 'SIGSTOP');
  // Redis holds one stream: every acknowledged offset once, with its own message.
  const raw = new Redis(redis.url);
  try {
    const members = await raw.zrange(`tidings:h:${CHANNEL}`, '0', '-1', 'WITHSCORES');
    const byOffset = new Map<number, number>();
    for (let i = 0; i < members.length; i += 2) {
      const push = JSON.parse(members[i]!.slice(members[i]!.indexOf(':') + 1)) as { offset: number; data: { i: number } };
      assert.equal(push.offset, Number(members[i + 1]));
      byOffset.set(push.offset, push.data.i);
    }
    for (const x of acked) assert.equal(byOffset.get(x.offset), x.i, `offset ${x.offset} holds publish ${x.i}`);
    const is = [...byOffset.values()];
    assert.equal(new Set(is).size, is.length, 'no publish stored twice');
  } finally {
    raw.disconnect();
  }
});

test('Redis restart with its append-only file: the stream and epoch continue, nothing acknowledged lost', async () => {
  const before = pub.acked.length;
  await until(() => pub.acked.length >= before + 30, 10000, 'publishing');
  const fencedBefore = cluster.directors.reduce((n, d) => n + d.fencedExits, 0);
  const restartedAt = Date.now();
  await redis.restart();
  await until(() => pub.firstAckSentAfter(Date.now() - 100) !== undefined && pub.acked.length >= before + 80, 15000, 'publishing after the Redis restart');
  // Back within the lease, the active director keeps it; later than that (a slow restart), it is fenced and a director takes the lease again.
  const fenced = cluster.directors.reduce((n, d) => n + d.fencedExits, 0) - fencedBefore;
  process.stdout.write(`# Redis restart: publishing acknowledged again ${pub.firstAckSentAfter(restartedAt)!.ackAt - restartedAt} ms after the kill (directors fenced by it: ${fenced}); ${pub.failed} publishes refused in the whole run\n`);
  await pub.stop();
  const acked = [...pub.acked];
  await until(() => subs.every((s) => s.has(acked.map((x) => x.offset))), 10000, 'every subscriber has every acknowledged offset').catch(() => undefined);
  check(acked, 'Redis restart');
  assert.equal(new Set(acked.map((x) => x.epoch)).size, 1, 'one epoch for every acknowledged publish');
});
