/**
 * The two safeguards against silent loss, end to end:
 *
 * - The edge checks that a channel's messages follow offset by offset. A hole
 *   is made to reach a real edge by a lossy hop: the edge's subscriber address
 *   is a ZeroMQ proxy of this test (XSUB to the real director, XPUB for the
 *   edge, subscriptions passed up) that leaves out one message, as a hop that
 *   dropped at its high-water mark would. The channel's subscribers must be
 *   closed with 4006 and recover the missing message from history.
 * - Every XPUB of the director and of the forwarders is set to block at its
 *   high-water mark (noDrop) rather than drop. With `zmq_high_water_mark` at
 *   its minimum, a burst far larger than every buffer on the way is published
 *   while the subscribers' edge stalls (SIGSTOP, as a long pause or a starved
 *   host): every subscriber must still get every message, in order, on its
 *   first connection.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { XPublisher, XSubscriber } from 'zeromq';
import { startCluster, serve, sleep, TOKEN_SECRET, API_KEY, type Cluster, type TidingsProcess } from '../helpers/processes.js';
import { freePorts } from '../helpers/ports.js';
import { TestClient } from '../helpers/client.js';
import { metric, postJson } from '../helpers/http.js';
import { channelTopic } from '../../src/cluster/topics.js';
import { DownKind, decodeHeader } from '../../src/cluster/wire.js';
import { lastOffsetInBatch } from '../../src/cluster/batch.js';
import { Publisher } from '../../src/publisher/publisher.js';
import { signToken } from '../../src/auth/sign.js';
import { TidingsClient, type MessagePush, type Reason } from '../../src/client/index.js';

/** The smallest high-water mark the settings accept. */
const HWM = 1000;

let cluster: Cluster;
let tapped: { proc: TidingsProcess; url: string; http: string } | null = null;
let proxy: LossyProxy | null = null;
const clients: TestClient[] = [];
const sdkClients: TidingsClient[] = [];
const publishers: Publisher[] = [];

/**
 * A downstream hop between the director and an edge: XSUB connected to the
 * director's subscriber address, XPUB bound for the edge. Subscriptions go up,
 * messages come down, except those `drop` picks.
 */
class LossyProxy {
  readonly down = new XPublisher({ linger: 0 });
  readonly up = new XSubscriber({ linger: 0 });
  readonly dropped: Array<{ channel: string; offset: number }> = [];
  /** The highest offset passed on (or dropped), per channel. */
  private seen = new Map<string, number>();
  private loops: Promise<void>[] = [];

  forwarded(channel: string): number {
    return this.seen.get(channel) ?? 0;
  }

  constructor(private readonly drop: (topic: Buffer, kind: DownKind, offset: number) => boolean) {}

  async start(bindAddress: string, directorSubscriber: string): Promise<void> {
    await this.down.bind(bindAddress);
    this.up.connect(directorSubscriber);
    this.loops.push(
      (async () => {
        for await (const [sub] of this.down) await this.up.send(sub!);
      })().catch(() => undefined),
      (async () => {
        for await (const frames of this.up) {
          const header = frames.length === 3 ? decodeHeader(frames[1]!) : undefined;
          const channel = frames[0]!.toString('utf8', 1, frames[0]!.length - 1);
          if (header && this.drop(frames[0]!, header.kind, header.offset)) {
            this.dropped.push({ channel, offset: header.offset });
            this.seen.set(channel, Math.max(this.seen.get(channel) ?? 0, header.offset));
            continue;
          }
          await this.down.send(frames);
          if (header && (header.kind === DownKind.Message || header.kind === DownKind.MessageBatch)) {
            const last = header.kind === DownKind.Message ? header.offset : (lastOffsetInBatch(frames[2]!) ?? header.offset);
            this.seen.set(channel, Math.max(this.seen.get(channel) ?? 0, last));
          }
        }
      })().catch(() => undefined),
    );
  }

  async stop(): Promise<void> {
    this.down.close();
    this.up.close();
    await Promise.allSettled(this.loops);
  }
}

const HOLE_CHANNEL = 'safeguard.hole';
const HOLE_OFFSET = 3;

before(async () => {
  // Director + one forwarder node with one edge worker, every high-water mark at its minimum.
  // Subscribers may lag by 64 MiB (client_send_buffer): when the edge resumes, the whole burst comes at once.
  // zmq_block_timeout 0: sockets wait for the stalled edge however long it takes (block-timeout.test.ts tests the bound).
  cluster = await startCluster(1, 1, { TIDINGS_ZMQ_HIGH_WATER_MARK: String(HWM), TIDINGS_ZMQ_BLOCK_TIMEOUT: '0', TIDINGS_CLIENT_SEND_BUFFER: String(64 << 20) });
  const d = cluster.director;
  const [port, proxyPort] = await freePorts(2);
  const holeTopic = channelTopic(HOLE_CHANNEL);
  let holeMade = false;
  proxy = new LossyProxy((topic, kind, offset) => {
    if (holeMade || kind !== DownKind.Message || offset !== HOLE_OFFSET || !topic.equals(holeTopic)) return false;
    holeMade = true;
    return true;
  });
  const proxyAddress = `tcp://127.0.0.1:${proxyPort}`;
  await proxy.start(proxyAddress, d.subscriber);
  // An edge-only node (no director, no forwarder) whose subscriber address is the proxy;
  // its commands (probes, subscribe, recovery) go to the real director.
  const proc = serve('tapped-edge', {
    TIDINGS_SERVER_HOST: '127.0.0.1',
    TIDINGS_SERVER_PORT: String(port),
    TIDINGS_DIRECTOR_ENABLED: 'false',
    TIDINGS_FORWARDER_ENABLED: 'false',
    TIDINGS_WORKERS: '1',
    TIDINGS_SUBSCRIBER_ADDRESS: proxyAddress,
    TIDINGS_PUBLISHER_ADDRESS: d.publisher,
    TIDINGS_COMMAND_ADDRESS: d.command,
    TIDINGS_TOKEN_SECRET: TOKEN_SECRET,
    TIDINGS_API_KEYS: API_KEY,
    TIDINGS_NODE_ID: 'tapped',
  });
  await proc.waitFor(/"msg":"node ready"/, 20000);
  tapped = { proc, url: `ws://127.0.0.1:${port}/ws`, http: `http://127.0.0.1:${port}` };
});

after(async () => {
  await Promise.all(publishers.map((p) => p.close()));
  for (const c of sdkClients) c.disconnect();
  for (const c of clients) c.close();
  await tapped?.proc.stop();
  await proxy?.stop();
  await cluster?.stop();
});

async function client(url: string, user: string): Promise<TestClient> {
  const c = await TestClient.connect(url, user);
  clients.push(c);
  return c;
}

test('an offset hole that reaches an edge closes the channel\'s subscribers with 4006, and they recover the missing message', async () => {
  const edge = tapped!;
  const raw = await client(edge.url, 'hole-raw');
  const start = await raw.call('subscribe', { channel: HOLE_CHANNEL });
  assert.equal(start.offset, 0, 'a fresh channel');

  // An SDK subscriber on the same edge: it must end with every message, once, in order.
  const sdk = new TidingsClient({
    urls: [edge.url],
    WebSocket,
    getToken: () => signToken({ secret: TOKEN_SECRET, user: 'hole-sdk', ttl: 600, subscribe: ['*'] }),
    initialRetryDelay: 0.1,
    maxRetryDelay: 0.5,
    timeout: 5,
  });
  sdkClients.push(sdk);
  const disconnects: Reason[] = [];
  sdk.on('disconnected', (r) => disconnects.push(r));
  sdk.connect();
  const got: MessagePush[] = [];
  const sub = sdk.subscribe(HOLE_CHANNEL);
  sub.on('message', (m) => got.push(m));
  await sub.ready(10);

  const gapsBefore = await metric(edge.http, 'tidings_edge_gaps_total');
  const TOTAL = 6;
  for (let i = 1; i <= TOTAL; i++) {
    const r = await postJson(`${cluster.director.http}/api/publish`, { channel: HOLE_CHANNEL, data: { i } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.offset, i);
  }
  // The proxy (in this process) sees the messages on its own ZeroMQ path: a loaded machine may answer the six
  // publishes first, so wait until it has passed offset TOTAL on (or 10 s).
  for (const deadline = Date.now() + 10_000; proxy!.forwarded(HOLE_CHANNEL) < TOTAL && Date.now() < deadline; ) await sleep(20);
  assert.deepEqual(proxy!.dropped, [{ channel: HOLE_CHANNEL, offset: HOLE_OFFSET }], 'the proxy left out exactly one message');

  // The plain client: offsets 1 and 2, then 4006 before anything after the hole.
  await raw.waitClosed(10000);
  assert.equal(raw.closeCode, 4006, `closed with message_gap, got ${raw.closeCode} ${raw.closeReason}`);
  assert.deepEqual(raw.messages(HOLE_CHANNEL).map((m) => m.offset), [1, 2], 'nothing after the hole was delivered as if it followed 2');
  assert.equal((await metric(edge.http, 'tidings_edge_gaps_total')) - gapsBefore, 1, 'the edge counted one gap');

  // It recovers from its last position: the hole is filled from history.
  const again = await client(edge.url, 'hole-raw');
  const rec = await again.call('subscribe', { channel: HOLE_CHANNEL, recover: { offset: 2, epoch: start.epoch } });
  assert.equal(rec.recovered, true);
  await again.waitFor(() => again.messages(HOLE_CHANNEL).length >= TOTAL - 2, 5000, 'the replay');
  assert.deepEqual(again.messages(HOLE_CHANNEL).map((m) => m.offset), [3, 4, 5, 6]);

  // The SDK did the same by itself.
  const deadline = Date.now() + 10_000;
  while (got.length < TOTAL && Date.now() < deadline) await sleep(20);
  assert.deepEqual(got.map((m) => m.offset), [1, 2, 3, 4, 5, 6], 'the SDK subscriber got every offset once, in order');
  assert.deepEqual(got.map((m) => (m.data as { i: number }).i), [1, 2, 3, 4, 5, 6]);
  assert.ok(disconnects.some((r) => r.code === 4006), `the SDK was told of the gap (4006): ${JSON.stringify(disconnects)}`);
});

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const FLOOD_CHANNEL = 'safeguard.flood';
/** Far more than every high-water mark and socket buffer between the director and the edge hold. */
const BURST = 30_000;
const PAD = 'x'.repeat(1000);

test(`a burst of ${BURST} messages past high-water marks of ${HWM}, to subscribers of a stalled edge: every message arrives, in order, on the first connection`, async () => {
  const node = cluster.nodes[0]!;
  const [edgePid] = childPids(node.proc.pid);
  assert.ok(edgePid, 'the node has its edge worker');
  const subs: TestClient[] = [];
  for (let i = 0; i < 3; i++) subs.push(await client(node.url, `flood${i}`));
  const starts = await Promise.all(subs.map((c) => c.call('subscribe', { channel: FLOOD_CHANNEL })));
  const first = starts[0].offset + 1;
  // Messages the director has sequenced (a second try covers a keep-alive connection the server closed just then).
  const sequenced = (): Promise<number> =>
    metric(cluster.director.http, 'tidings_director_published_total', { target: 'channel' }).catch(() => metric(cluster.director.http, 'tidings_director_published_total', { target: 'channel' }));
  const before = await sequenced();

  const pub = new Publisher({ address: cluster.director.publisher });
  publishers.push(pub);
  pub.start();
  await pub.waitReady(5000);
  const began = Date.now();
  // The edge stalls first, so nothing on the way has grown its buffers to the burst.
  // (Should this process die meanwhile, the edge must not stay stopped.)
  const resume = (): void => {
    try {
      process.kill(edgePid!, 'SIGCONT');
    } catch {
      /* already gone */
    }
  };
  process.once('exit', resume);
  process.kill(edgePid!, 'SIGSTOP');
  const stalledAt = Date.now();
  let heldBack = -1;
  const publishing = (async () => {
    for (let i = 0; i < BURST; i++) await pub.publish(FLOOD_CHANNEL, { i, pad: PAD });
  })();
  try {
    // Hold the edge until the director has stopped moving: everything between it and the edge is full.
    let last = -1;
    for (;;) {
      await sleep(250);
      const now = (await sequenced()) - before;
      if (now === last || now >= BURST || Date.now() - stalledAt > 6000) break;
      last = now;
    }
    heldBack = BURST - ((await sequenced()) - before);
  } finally {
    resume();
  }
  const stalledMs = Date.now() - stalledAt;
  await publishing;
  // The publisher's socket holds what the director has not taken yet: keep it open until the director has it all.
  let taken = -1;
  let lastTaken = -1;
  let takenChange = Date.now();
  while (taken < BURST && Date.now() - takenChange < 5000) {
    await sleep(100);
    taken = (await sequenced()) - before;
    if (taken !== lastTaken) [lastTaken, takenChange] = [taken, Date.now()];
  }
  // Wait while messages keep arriving: a loss shows as a stop short of the burst, or a close.
  let lastTotal = -1;
  let lastChange = Date.now();
  while (Date.now() - lastChange < 5000 && Date.now() - began < 60_000) {
    if (subs.every((c) => c.pushes.length >= BURST) || subs.some((c) => c.closeCode !== null)) break;
    const total = subs.reduce((a, c) => a + c.pushes.length, 0);
    if (total !== lastTotal) [lastTotal, lastChange] = [total, Date.now()];
    await sleep(50);
  }
  process.stdout.write(`# burst of ${BURST} in ${Date.now() - began} ms; edge stalled ${stalledMs} ms; ${heldBack} messages held back at the publisher while it was\n`);
  for (const [n, c] of subs.entries()) {
    const offsets = c.messages(FLOOD_CHANNEL).map((m) => m.offset!);
    const missing = BURST - new Set(offsets).size;
    assert.equal(c.closeCode, null, `subscriber ${n} still on its first connection (closed ${c.closeCode} ${c.closeReason})`);
    assert.equal(missing, 0, `subscriber ${n}: ${missing} of ${BURST} messages missing`);
    assert.deepEqual(offsets.slice(0, 3), [first, first + 1, first + 2]);
    let inOrder = true;
    for (let k = 1; k < offsets.length; k++) if (offsets[k] !== offsets[k - 1]! + 1) inOrder = false;
    assert.ok(inOrder && offsets.length === BURST, `subscriber ${n}: every offset once, in order`);
  }
  assert.equal(await metric(node.http, 'tidings_edge_gaps_total'), 0, 'the edge saw no gap');
  // The burst really went past every buffer on the way: the director had to stop taking messages.
  assert.ok(heldBack > 0, `back pressure reached the publisher while the edge stalled (held back ${heldBack})`);
});
