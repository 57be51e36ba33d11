/**
 * A seconds-long run of the bench generator against a real single node, so
 * the bench cannot rot: every subscriber gets every message once, in order,
 * and the figures it reports are positive. (Performance itself is measured
 * only by `npm run bench`, never asserted here.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startSingleNode, TOKEN_SECRET, type SingleNode } from '../helpers/processes.js';
import { runWorkload, oneChannel, manyChannels, type RunResult } from '../../bench/lib/scenario.js';
import type { RunningServer } from '../../bench/lib/servers.js';

let node: SingleNode;
let server: RunningServer;
before(async () => {
  node = await startSingleNode({ TIDINGS_ALLOW_ANONYMOUS: 'true', TIDINGS_LOG_LEVEL: 'info' });
  server = { kind: 'tidings', label: 'tidings', urls: [node.url], publishTo: node.publisher, pids: [node.proc.pid], stop: () => node.stop() };
});
after(async () => {
  await node?.stop();
});

function assertComplete(r: RunResult): void {
  assert.equal(r.loss, 0, 'no subscriber missed a message');
  assert.equal(r.outOfOrder, 0, 'no message arrived out of order or twice');
  assert.equal(r.foreign, 0, 'no message of a channel the subscriber did not join');
  assert.ok(r.published > 0, 'messages were published');
  assert.equal(r.deliveries, r.published * (r.subscriptions / r.channels), 'deliveries = messages x subscribers');
  assert.ok(r.deliveriesPerSec > 0 && r.deliveriesPerCpuSec > 0, 'throughput figures are positive');
  assert.ok(r.serverCpuSec > 0, 'server CPU time was read from /proc');
  assert.ok(r.latencyMs.p50 > 0 && r.latencyMs.p99 >= r.latencyMs.p50 && r.latencyMs.max >= r.latencyMs.p99, 'latency percentiles are ordered');
  assert.ok(r.rssMB > 0, 'server memory was read');
}

test('fan-out: 200 subscribers of one channel get every message in order', async () => {
  const r = await runWorkload(server, { scenario: 'smoke-fanout', subscriptions: oneChannel(200), channels: 1, payload: 100, mode: 'saturate', durationMs: 800, warmupMs: 200, processes: 1 });
  assertComplete(r);
});

test('many channels: 100 connections on 20 channels (1-10 subscribers each) get exactly their channels', async () => {
  const r = await runWorkload(server, { scenario: 'smoke-channels', subscriptions: manyChannels(20, 100), channels: 20, payload: 64, mode: 'rate', rate: 2000, durationMs: 800, warmupMs: 200, processes: 1 });
  assert.equal(r.loss, 0);
  assert.equal(r.outOfOrder + r.foreign, 0);
  assert.equal(r.subscriptions, 110);
  assert.ok(r.published >= 1000, `published ${r.published}`);
  assert.ok(r.deliveries > r.published, 'each message reached its channel subscribers');
});

test('authenticated subscribers: each connects with its own JWT, gets every message, and the connect figures are reported', async () => {
  const authed: RunningServer = { ...server, tokenSecret: TOKEN_SECRET };
  const r = await runWorkload(authed, { scenario: 'smoke-auth', subscriptions: oneChannel(100), channels: 1, payload: 100, mode: 'rate', rate: 200, durationMs: 800, warmupMs: 200, processes: 1 });
  assertComplete(r);
  assert.equal(r.authenticated, true);
  assert.ok(r.firstP50Ms > 0 && r.firstP50Ms <= r.latencyMs.p50, 'first delivery of a message comes no later than the median one');
  assert.ok(r.cpuPerConnectUs > 0 && r.connectsPerSec > 0 && r.connectMs.p99 >= r.connectMs.p50, 'connect figures are read');
  // The tokens are really sent: signed with another secret, every subscriber is refused (not let in anonymously).
  await assert.rejects(
    runWorkload({ ...server, tokenSecret: 'another-secret-0123456789abcdef0123456789' }, { scenario: 'smoke-bad-auth', subscriptions: oneChannel(5), channels: 1, payload: 0, mode: 'connect', durationMs: 0, warmupMs: 0, processes: 1 }),
    /5 subscribers failed to open/,
  );
});

test("a cluster at a fixed rate: the server's CPU splits into each forwarder node's and the director's, and each delivery took a socket write", async () => {
  const cluster = await startCluster(2, 1, { TIDINGS_ALLOW_ANONYMOUS: 'true', TIDINGS_LOG_LEVEL: 'info' });
  try {
    const nodePids = cluster.nodes.map((n) => n.proc.child.pid!);
    const clustered: RunningServer = {
      kind: 'tidings',
      label: 'tidings-cluster-2',
      urls: cluster.nodes.map((n) => n.url),
      publishTo: cluster.director.publisher,
      pids: [cluster.director.proc.child.pid!, ...nodePids],
      nodePids,
      stop: () => cluster.stop(),
    };
    const r = await runWorkload(clustered, { scenario: 'smoke-scale-rate', subscriptions: oneChannel(2 * 50), channels: 1, payload: 100, mode: 'rate', rate: 100, durationMs: 800, warmupMs: 200, processes: 1 });
    assertComplete(r);
    assert.equal(r.nodeCpuSecEach?.length, 2, 'one CPU figure per forwarder node');
    for (const c of r.nodeCpuSecEach!) assert.ok(c > 0, `each node used CPU: ${r.nodeCpuSecEach!.join(', ')}`);
    assert.ok(r.directorCpuSec! > 0 && r.directorCpuMicrosPerMessage! > 0, 'the director used CPU');
    assert.ok(Math.abs(r.nodeCpuSecEach![0]! + r.nodeCpuSecEach![1]! - r.nodeCpuSec!) < 1e-9, 'the nodes\' CPU is the sum of each node\'s');
    assert.ok(Math.abs(r.nodeCpuSec! + r.directorCpuSec! - r.serverCpuSec) < 1e-6, `nodes + director = server: ${r.nodeCpuSec} + ${r.directorCpuSec} vs ${r.serverCpuSec}`);
    assert.ok(r.deliveriesPerNodeCpuSec! > r.deliveriesPerCpuSec, 'per node CPU-s leaves the director out');
    // 100 subscribers at 100 msg/s on two idle-ish edges: writes carry one or a few messages each, never none.
    assert.ok(r.nodeWritesPerDelivery! > 0.05 && r.nodeWritesPerDelivery! <= 1.5, `write calls per delivery ${r.nodeWritesPerDelivery}`);
  } finally {
    await cluster.stop();
  }
});
