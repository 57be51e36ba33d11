/**
 * What clients, publishers and operators meet when part of the cluster goes
 * away: a node that stops takes its connections out of presence at once (no
 * ghost "2 tabs" after a failover), and with the director down a websocket
 * connect, `tidings publish` and `tidings publish --ack` fail within a second
 * or two with a plain "director unreachable", while each process logs the
 * outage once instead of every heartbeat; a request in flight when the
 * director dies is answered at once, not at its timeout.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, runCli, TOKEN_SECRET, sleep, type Cluster, type ClusterNode } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { postJson, metric } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { signToken } from '../../src/auth/sign.js';

let cluster: Cluster;

before(async () => {
  // The default presence_ttl (15 s): a connection that lingered until expiry would show.
  cluster = await startCluster(2, 1);
});

after(async () => {
  await cluster?.stop();
});

async function bobsConnections(): Promise<number> {
  const r = await postJson(`${cluster.director.http}/api/presence`, { channel: 'lobby' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.users as Array<{ user: string; connections: string[] }>).find((u) => u.user === 'bob')?.connections.length ?? 0;
}

async function until(what: string, ms: number, pred: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

test('a node that stops takes its connections out of presence at once, not after presence_ttl', async () => {
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  const here = await TestClient.connect(n1.url, 'bob');
  const there = await TestClient.connect(n2.url, 'bob');
  await here.call('subscribe', { channel: 'lobby' });
  await there.call('subscribe', { channel: 'lobby' });
  await until('bob has two connections in presence', 10_000, async () => (await bobsConnections()) === 2);
  const t0 = Date.now();
  await n2.proc.stop();
  await there.waitClosed();
  assert.equal(there.closeCode, 1001, 'the stopping node closed its clients with 1001 shutdown');
  await until('bob has one connection in presence', 5000, async () => (await bobsConnections()) === 1);
  const ms = Date.now() - t0;
  assert.ok(ms < 5000, `left presence in ${ms} ms (presence_ttl is 15 s)`);
  process.stdout.write(`# connection of a stopped node left presence ${ms} ms after SIGTERM\n`);
  here.close();
});

test('with the director down: a request in flight is answered at once; connect, publish and publish --ack fail fast and say why; the outage is logged once', async () => {
  const n1 = cluster.nodes[0]!;
  // A subscribe in flight through node1's forwarder when the director dies: the director answers over the
  // forwarder's link, which drops with it, so the forwarder tells the edge at once (113), and the client hears
  // it long before the edge's command timeout (114 before the "link lost" reply).
  const dave = await TestClient.connect(n1.url, 'dave');
  const commandsUp = (): Promise<number> => metric(n1.http, 'tidings_forwarder_messages_total', { path: 'cmd' }, true);
  process.kill(cluster.director.proc.pid, 'SIGSTOP');
  let killedAt: number;
  try {
    // The edge pings the director every second, one ping at a time (2 s timeout): once a ping has gone up,
    // the next command node1 passes on is the subscribe (its presence reports come every 5 s).
    const atStop = await commandsUp();
    await until('the edge ping has gone up', 5000, async () => (await commandsUp()) > atStop);
    const before = await commandsUp();
    const subscribing = dave.request('subscribe', { channel: 'lobby' }, 20_000);
    await until('the subscribe has gone up', 5000, async () => (await commandsUp()) > before);
    await cluster.director.proc.kill9();
    killedAt = Date.now();
    const answer = await subscribing;
    const ms = Date.now() - killedAt;
    assert.equal(answer.error?.code, 113, JSON.stringify(answer));
    assert.match(answer.error!.message, /the director's link to node node1 dropped with this request in flight: it may or may not have been carried out/);
    assert.ok(ms < 2500, `answered ${ms} ms after the director died`);
    process.stdout.write(`# a subscribe in flight when the director died was answered 113 ${ms} ms later\n`);
  } finally {
    dave.close();
    if (cluster.director.proc.exitCode === undefined) process.kill(cluster.director.proc.pid, 'SIGCONT');
  }

  // A websocket client: error 113 on connect, then close 4008 (retry later or elsewhere).
  const token = await signToken({ secret: TOKEN_SECRET, user: 'carol', ttl: 600, subscribe: ['*'] });
  const c = await TestClient.open(n1.url);
  let t0 = Date.now();
  const reply = await c.request('connect', { token }, 10_000);
  const connectMs = Date.now() - t0;
  assert.equal(reply.error?.code, 113, JSON.stringify(reply));
  assert.match(reply.error!.message, /director is unreachable|director unreachable/);
  await c.waitClosed(3000);
  assert.equal(c.closeCode, 4008, 'closed as unavailable');
  assert.ok(connectMs < 2500, `connect answered in ${connectMs} ms`);

  // tidings publish through the node's publisher address: the director is not behind it.
  t0 = Date.now();
  const pub = await runCli(['publish', '--channel', 'news', '--data', '{"text":"hi"}'], { TIDINGS_PUBLISHER_ADDRESS: n1.publisher });
  const publishMs = Date.now() - t0;
  assert.equal(pub.code, 1, pub.stderr);
  assert.match(pub.stderr, /^tidings publish: the director is unreachable: .* accepted the connection but no director subscribed behind it/);
  assert.equal(pub.stderr.trim().split('\n').length, 1, 'one line');
  assert.ok(publishMs < 5000, `publish failed in ${publishMs} ms`);

  // --ack over the node's command address: the forwarder answers 113 at once.
  t0 = Date.now();
  const acked = await runCli(['publish', '--ack', '--channel', 'news', '--data', '{}'], { TIDINGS_COMMAND_ADDRESS: n1.command });
  const ackMs = Date.now() - t0;
  assert.equal(acked.code, 1, acked.stderr);
  assert.match(acked.stderr, /^tidings publish: the director is unreachable from node node1/);
  assert.ok(ackMs < 4000, `publish --ack failed in ${ackMs} ms`);

  // Nothing at all at the address.
  const nowhere = `tcp://127.0.0.1:${await freePort()}`;
  t0 = Date.now();
  const lost = await runCli(['publish', '--channel', 'news', '--data', '{}', '--publisher-address', nowhere]);
  assert.equal(lost.code, 1);
  assert.match(lost.stderr, new RegExp(`^tidings publish: nothing is listening at ${nowhere} \\(connection refused\\)`));
  assert.ok(Date.now() - t0 < 5000, `refused in ${Date.now() - t0} ms`);
  const noAck = await runCli(['publish', '--ack', '--channel', 'news', '--data', '{}', '--command-address', nowhere]);
  assert.equal(noAck.code, 1);
  assert.match(noAck.stderr, new RegExp(`director unreachable: nothing answers at ${nowhere}`));

  // Through more than one presence heartbeat (presence_ttl/3 = 5 s), each process says it once.
  await sleep(Math.max(0, killedAt + 6500 - Date.now()));
  const lines = n1.proc.text().split('\n').filter((l) => l.includes('"level":40'));
  const edgeWarnings = lines.filter((l) => /director unreachable/.test(l) && l.includes('"edge":"node1/e0"'));
  const forwarderWarnings = lines.filter((l) => /director unreachable/.test(l) && l.includes('"component":"forwarder"'));
  assert.equal(edgeWarnings.length, 1, `the edge warns once:\n${lines.join('\n')}`);
  assert.equal(forwarderWarnings.length, 1, `the forwarder warns once:\n${lines.join('\n')}`);
  assert.deepEqual(lines.filter((l) => /presence (report|snapshot) failed|subscription not established/.test(l)), [], 'no warning per heartbeat or per refused subscription');
});
