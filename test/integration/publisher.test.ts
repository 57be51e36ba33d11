/**
 * Publishing from backend code over ZeroMQ: the Publisher loses nothing sent
 * right after it connects (omnibus' slow joiner), directly to the director and
 * through a forwarder node; acknowledged publishes return offsets.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Publisher as RawPub } from 'zeromq';
import { startCluster, startSingleNode, type Cluster } from '../helpers/processes.js';
import { freePorts } from '../helpers/ports.js';
import { TestClient } from '../helpers/client.js';
import { Publisher } from '../../src/publisher/publisher.js';

let cluster: Cluster;
let reader: TestClient;
before(async () => {
  cluster = await startCluster(1, 1);
  reader = await TestClient.connect(cluster.nodes[0]!.url, 'reader');
});
after(async () => {
  reader?.close();
  await cluster?.stop();
});

for (const via of ['director', 'forwarder'] as const) {
  test(`the first messages after connect all arrive (publishing to the ${via})`, async () => {
    const channel = `joiner.${via}`;
    const start = await reader.call('subscribe', { channel });
    const address = via === 'director' ? cluster.director.publisher : cluster.nodes[0]!.publisher;
    const pub = new Publisher({ address, sender: 'worker' });
    pub.start();
    // No waiting of any kind between connect and the sends.
    for (let i = 0; i < 1000; i++) await pub.publish(channel, { i });
    await pub.flush();
    await reader.waitFor(() => reader.messages(channel).length === 1000, 15000, '1000 messages');
    const msgs = reader.messages(channel);
    assert.deepEqual(msgs.map((m) => (m.data as { i: number }).i), Array.from({ length: 1000 }, (_, i) => i));
    assert.deepEqual(msgs.map((m) => m.offset), Array.from({ length: 1000 }, (_, i) => start.offset + 1 + i));
    assert.ok(msgs.every((m) => m.sender === 'worker'));
    await pub.close();
  });
}

test('messages published before the director is up are delivered once it is; a plain PUB socket loses them', async () => {
  const [port] = await freePorts(1);
  const address = `tcp://127.0.0.1:${port}`;
  const pub = new Publisher({ address });
  pub.start();
  const raw = new RawPub();
  raw.connect(address);
  for (let i = 0; i < 20; i++) {
    await pub.publish('early', { i, from: 'publisher' });
    await raw.send(['tidings/1', 'channel', 'early', JSON.stringify({ i, from: 'raw' })]);
  }
  assert.equal(pub.pending, 20, 'held while nothing upstream listens');
  const node = await startSingleNode({ TIDINGS_PUBLISHER_ADDRESS: address });
  try {
    await pub.flush(10000);
    assert.equal(pub.pending, 0);
    const c = await TestClient.connect(node.url, 'late-reader');
    let history: any;
    const deadline = Date.now() + 10000;
    do {
      history = await c.call('history', { channel: 'early', limit: 100 });
      if (history.messages.length >= 20) break;
      await new Promise((r) => setTimeout(r, 50));
    } while (Date.now() < deadline);
    const got = history.messages.map((m: any) => m.data);
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => ({ i, from: 'publisher' })), 'all 20 from the Publisher, none from the plain PUB socket');
    c.close();
  } finally {
    raw.close();
    await pub.close();
    await node.stop();
  }
});

test('acknowledged publishes over the command address return consecutive offsets', async () => {
  const channel = 'acked';
  await reader.call('subscribe', { channel });
  const pub = new Publisher({ address: cluster.nodes[0]!.publisher, commandAddress: cluster.nodes[0]!.command });
  pub.start();
  const acks: Array<{ offset: number; epoch: string }> = [];
  for (let i = 0; i < 20; i++) acks.push(await pub.publishAcked(channel, { i }));
  const first = acks[0]!.offset;
  assert.deepEqual(acks.map((a) => a.offset), Array.from({ length: 20 }, (_, i) => first + i));
  assert.ok(acks.every((a) => a.epoch === acks[0]!.epoch));
  await reader.waitFor(() => reader.messages(channel).length === 20);
  await assert.rejects(pub.publishAcked('bad name', {}), /invalid channel|channel may only/);
  await assert.rejects(pub.publish('bad name', {}), /channel may only/);
  await pub.close();
});
