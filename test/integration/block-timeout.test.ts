/**
 * zmq_block_timeout: a process that stops reading holds the cluster back for
 * at most that long. Its peers then send channel messages on without it, so
 * everyone else keeps receiving; when it reads again its edges see the hole
 * in the offsets, close their subscribers with 4006, and the SDK recovers
 * every message from history.
 *
 * - a stopped edge worker: its node's forwarder sends on to the other worker
 *   of the node and the director to the other node;
 * - a stopped forwarder node: the director sends on to the other node;
 * - a peer of the director (or of a forwarder) that reads again at once after
 *   the hop sent on without it: the hole at the end of the stream shows in the
 *   ticks; also with messages in batches through a forwarder.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';
import { startCluster, sleep, TOKEN_SECRET, type Cluster } from '../helpers/processes.js';
import { metric } from '../helpers/http.js';
import { signToken } from '../../src/auth/sign.js';
import { Publisher } from '../../src/publisher/publisher.js';
import { TidingsClient } from '../../src/client/index.js';
import { Subscriber } from 'zeromq';
import { ALL_TOPIC, channelTopic } from '../../src/cluster/topics.js';
import { DownKind, decodeHeader } from '../../src/cluster/wire.js';
import { tickOf } from '../../src/cluster/ticks.js';
import { decodeMessageBatch } from '../../src/cluster/batch.js';

const BLOCK_TIMEOUT_S = 1;
/** Far more than the high-water marks (1000) and socket buffers in front of a stopped process hold. */
const BURST = 8000;
/** At most this many bursts to a stopped process (stoppedBursts): history holds them all. */
const MAX_STOPPED_BURSTS = 5;
const PAD = 'x'.repeat(1000);
/**
 * Small messages for a raw peer, which the director batches (up to DOWN_BATCH_BYTES each, 18-25 batches for the
 * burst here): well more than the pipes and buffers in front of it hold (24 000-30 000 of 32 000 messages seen
 * with 256 KB batches).
 */
const BATCHED_BURST = 40_000;

let cluster: Cluster;
const clients: TidingsClient[] = [];
const stopped = new Set<number>();

before(async () => {
  // Two nodes with two edge workers each. History holds every burst sent, so the stopped process' clients recover it all.
  cluster = await startCluster(2, 2, {
    TIDINGS_ZMQ_HIGH_WATER_MARK: '1000',
    TIDINGS_ZMQ_BLOCK_TIMEOUT: String(BLOCK_TIMEOUT_S),
    TIDINGS_HISTORY_SIZE: String(MAX_STOPPED_BURSTS * BURST),
    TIDINGS_HISTORY_CHANNEL_BYTES: String(128 << 20),
    TIDINGS_CLIENT_SEND_BUFFER: String(64 << 20),
    // Pings far apart: the SDK's no-ping watchdog (ping + 5 s) must not move readers off a stopped process here.
    TIDINGS_PING_INTERVAL: '100',
    TIDINGS_IDLE_TIMEOUT: '300',
  });
});
after(async () => {
  for (const c of clients) c.disconnect();
  for (const pid of stopped) resume(pid);
  await cluster?.stop();
});

function resume(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    /* gone */
  }
  stopped.delete(pid);
}
process.once('exit', () => [...stopped].forEach(resume));

function pause(pid: number): void {
  stopped.add(pid);
  process.kill(pid, 'SIGSTOP');
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface Reader {
  client: TidingsClient;
  node: string;
  seqs: number[];
  closeCodes: number[];
}

async function readers(channel: string, perNode: number): Promise<Reader[]> {
  const out: Reader[] = [];
  for (const n of cluster.nodes) {
    for (let i = 0; i < perNode; i++) {
      const user = `${channel}-${n.proc.name}-${i}`;
      const client = new TidingsClient({
        urls: [n.url],
        WebSocket,
        getToken: () => signToken({ secret: TOKEN_SECRET, user, ttl: 600, subscribe: ['*'] }),
        initialRetryDelay: 0.1,
        maxRetryDelay: 0.5,
        timeout: 10,
      });
      clients.push(client);
      const r: Reader = { client, node: '', seqs: [], closeCodes: [] };
      client.on('connected', (info) => (r.node ||= info.node));
      client.on('disconnected', (reason) => r.closeCodes.push(reason.code));
      const sub = client.subscribe(channel);
      sub.on('message', (m) => r.seqs.push((m.data as { i: number }).i));
      client.connect();
      await sub.ready(10);
      out.push(r);
    }
  }
  return out;
}

const complete = (r: Reader, n: number): boolean => r.seqs.length >= n;

async function waitUntil(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

/** What a raw peer received, short: message ranges by offset, and ticks (with what they name). */
function trace(got: Array<{ kind: 'message'; i: number } | { kind: 'tick'; seq: number; missed?: { channel: string; offset: number } }>, offsets: Map<number, number>): string {
  const out: string[] = [];
  let from = -1;
  let to = -1;
  const close = (): void => {
    if (from >= 0) out.push(from === to ? `m${from}` : `m${from}-${to}`);
    from = to = -1;
  };
  for (const g of got) {
    if (g.kind === 'message') {
      const o = offsets.get(g.i)!;
      if (from >= 0 && o === to + 1) to = o;
      else {
        close();
        from = to = o;
      }
    } else {
      close();
      out.push(`t${g.seq}${g.missed ? `(${g.missed.channel}@${g.missed.offset})` : ''}`);
    }
  }
  close();
  return out.join(' ');
}

/** Polls an asynchronous condition every 10 ms until it holds or timeoutMs passed. */
async function waitFor(pred: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/** Messages the director has sequenced (a second try covers a keep-alive connection the server closed just then). */
function sequenced(): Promise<number> {
  const read = (): Promise<number> => metric(cluster.director.http, 'tidings_director_published_total', { target: 'channel' });
  return read().catch(read);
}

async function publishBurst(channel: string, from: number, count: number, pollMs = 100, pad = PAD): Promise<void> {
  const before = await sequenced();
  const pub = new Publisher({ address: cluster.director.publisher });
  pub.start();
  try {
    await pub.waitReady(5000);
    for (let i = from; i < from + count; i++) await pub.publish(channel, { i, pad });
    // The publisher's socket holds what the director has not taken yet: open until it has it all (or stops taking).
    let last = -1;
    let lastChange = Date.now();
    for (;;) {
      const taken = (await sequenced()) - before;
      if (taken >= count || Date.now() - lastChange > 10_000) break;
      if (taken !== last) [last, lastChange] = [taken, Date.now()];
      await sleep(pollMs);
    }
  } finally {
    await pub.close();
  }
}

/**
 * A node's metric while one of its edge workers is stopped: the node's port is shared by its workers, and a request
 * handed to the stopped one is not answered until it runs again; asked again, another worker answers (once the
 * node has given up on the stopped worker's part, after 2 s).
 */
async function metricPast(stoppedWorker: number, http: string, name: string): Promise<number> {
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      // The node waits up to 2 s for each worker's part of its metrics (the stopped one's never comes).
      return await metric(http, name, {}, true, 5000);
    } catch (err) {
      if ((err as Error).name !== 'TimeoutError') throw err;
    }
  }
  throw new Error(`${http}/metrics: no answer in 10 tries past stopped worker ${stoppedWorker}`);
}

/**
 * Bursts from `from` on, to a stopped process, until `shed()` says the hop in front of it sent on without it; at
 * most MAX_STOPPED_BURSTS. What a stopped process holds back is the hop's send queue and pipe plus the kernel's
 * socket buffers on both ends, and Linux grows those with the traffic before (up to tcp_rmem's maximum, 32 MiB
 * here): one burst is sometimes not more than that. Returns how many messages were sent in all (`from` included).
 */
async function stoppedBursts(channel: string, from: number, shed: () => Promise<boolean>): Promise<number> {
  let total = from;
  for (let k = 0; k < MAX_STOPPED_BURSTS; k++) {
    await publishBurst(channel, total, BURST - (k === 0 ? from : 0));
    total = (k + 1) * BURST;
    // The hop sends on without a full peer only after waiting zmq_block_timeout (the director twice that).
    if (await waitFor(shed, 3 * BLOCK_TIMEOUT_S * 1000)) break;
  }
  process.stdout.write(`# ${channel}: ${total} messages until the hop sent on without the stopped process\n`);
  return total;
}

/** Every reader ends with 0..n-1 exactly once, in order. */
function assertAll(rs: Reader[], n: number): void {
  for (const r of rs) {
    assert.equal(r.seqs.length, n, `${r.node}: ${r.seqs.length} of ${n} messages`);
    assert.ok(
      r.seqs.every((s, k) => s === k),
      `${r.node}: every message once, in order`,
    );
  }
}

test(`an edge worker stopped for longer than zmq_block_timeout (${BLOCK_TIMEOUT_S} s) holds back no one else; its subscribers get 4006 and recover everything`, async () => {
  const channel = 'block.edge';
  const rs = await readers(channel, 4);
  const [w0, w1] = childPids(cluster.nodes[0]!.proc.pid);
  assert.ok(w0 && w1, 'node1 has two edge workers');
  // Stop one worker, then see whose messages stop: those readers are on it.
  pause(w0!);
  await publishBurst(channel, 0, 1);
  const node2Readers = rs.filter((r) => r.node.startsWith('node2/'));
  assert.ok(await waitUntil(() => node2Readers.every((r) => complete(r, 1)), 10_000), 'node2 got the first message');
  await sleep(1000);
  const onStopped = rs.filter((r) => !complete(r, 1));
  assert.ok(onStopped.length > 0 && onStopped.length < 4, `some of node1's readers are on the stopped worker (${onStopped.length})`);
  assert.equal(new Set(onStopped.map((r) => r.node)).size, 1, 'all on one edge');
  const others = rs.filter((r) => !onStopped.includes(r));

  // Bursts until node1's forwarder has sent on without the stopped worker (see stoppedBursts).
  const forwarderShed = await metricPast(w0!, cluster.nodes[0]!.http, 'tidings_forwarder_shed_total');
  const total = await stoppedBursts(channel, 1, async () => (await metricPast(w0!, cluster.nodes[0]!.http, 'tidings_forwarder_shed_total')) > forwarderShed);
  // While the worker is still stopped, everyone else gets the whole burst.
  const othersDone = await waitUntil(() => others.every((r) => complete(r, total)), 30_000);
  const counts = others.map((r) => `${r.node}:${r.seqs.length}`).join(' ');
  assert.ok(othersDone, `with the worker still stopped, every other reader got all ${total} (${counts})`);
  assert.ok(onStopped.every((r) => r.seqs.length === 0), `the stopped worker delivered nothing meanwhile (${onStopped.map((r) => r.seqs.length).join(' ')})`);
  resume(w0!);

  const ok1 = await waitUntil(() => onStopped.every((r) => complete(r, total)), 30_000);
  if (!ok1) for (const l of cluster.nodes[0]!.proc.text().split('\n')) if (/"level":(40|50)/.test(l)) process.stdout.write(`# LOG ${l.slice(0, 300)}\n`);
  assert.ok(ok1, `the stopped worker's readers recovered: ${onStopped.map((r) => r.seqs.length).join(' ')}`);
  assertAll(rs, total);
  for (const r of onStopped) assert.ok(r.closeCodes.includes(4006), `${r.node}: told of the gap (4006): ${r.closeCodes}`);
  for (const r of others) assert.deepEqual(r.closeCodes, [], `${r.node}: never disconnected`);
  assert.ok((await metric(cluster.nodes[0]!.http, 'tidings_forwarder_shed_total')) > 0, "node1's forwarder counted what it sent on without the stopped worker");
  assert.equal(await metric(cluster.director.http, 'tidings_director_shed_total'), 0, 'the director never had to send on without node1');
});

test(`a forwarder node stopped for longer than zmq_block_timeout holds back no other node; its subscribers get 4006 and recover everything`, async () => {
  const channel = 'block.node';
  const rs = await readers(channel, 2);
  const node1 = cluster.nodes[0]!;
  const onStopped = rs.filter((r) => r.node.startsWith('node1/'));
  const others = rs.filter((r) => !onStopped.includes(r));
  assert.equal(onStopped.length, 2);
  const shedBefore = await metric(cluster.director.http, 'tidings_director_shed_total');
  const shed = async (): Promise<boolean> => (await metric(cluster.director.http, 'tidings_director_shed_total')) > shedBefore;
  pause(node1.proc.pid);
  let total = 0;
  try {
    total = await stoppedBursts(channel, 0, shed);
    const othersDone = await waitUntil(() => others.every((r) => complete(r, total)), 30_000);
    assert.ok(othersDone, `with node1 stopped, node2's readers got all ${total} (${others.map((r) => r.seqs.length).join(' ')})`);
    assert.ok(onStopped.every((r) => r.seqs.length < total), 'node1 delivered not everything meanwhile');
    assert.ok(await shed(), `the director counted what it sent on without node1 (after ${total} messages)`);
  } finally {
    resume(node1.proc.pid);
  }
  assert.ok(await waitUntil(() => onStopped.every((r) => complete(r, total)), 30_000), `node1's readers recovered: ${onStopped.map((r) => r.seqs.length).join(' ')}`);
  assertAll(rs, total);
  for (const r of onStopped) assert.ok(r.closeCodes.includes(4006), `${r.node}: told of the gap (4006): ${r.closeCodes}`);
});

/**
 * A peer that reads again at once after a hop sent on without it (sooner than
 * the next tick): what it missed is at the end of the stream, and only the
 * ticks can show it. A raw SUB socket stands for a forwarder (on the
 * director's subscriber address) or an edge worker (on a node's).
 */
const RAW_PEERS = [
  { hop: 'director', batched: false },
  { hop: 'forwarder', batched: false },
  // Small messages: the director batches them (src/cluster/batch.ts) and the forwarder sheds a batch;
  // the ticks it renumbers go down between batches. Such a burst takes the hop more than a tick interval to pass on,
  // so ticks it drops show the hole too (the marker naming a shed batch: test/unit/tick-relay.test.ts).
  { hop: 'forwarder', batched: true },
] as const;
for (const { hop, batched } of RAW_PEERS) {
  test(`a peer that reads again just after the ${hop} sent on without it sees the hole at the end of the stream in the next ticks${batched ? ' (messages in batches)' : ''}`, async () => {
    const channel = `block.tick.${hop}${batched ? '.batched' : ''}`;
    const at = hop === 'director' ? cluster.director : cluster.nodes[0]!;
    const shedMetric = hop === 'director' ? 'tidings_director_shed_total' : 'tidings_forwarder_shed_total';
    // More than the pipes and buffers in front of the peer hold (about 3500 1 KB messages here, one per ZeroMQ
    // message), and little more: what is left to pass on after the hop sheds takes it much less than a tick
    // interval, so no tick it sends meanwhile shows the hole (only the marker does).
    const burst = batched ? BATCHED_BURST : 5000;
    const pad = batched ? '' : PAD;
    let batches = 0;
    // Small buffers: the burst must be more than the pipes and socket buffers in front of it hold. Batches reach
    // DOWN_BATCH_BYTES (256 KB), the 1 KB messages' too when a turn of the hop takes several publish batches: 2 of
    // them hold about what 10 batches of 64 KB held when this was calibrated (with 10, the pipes sometimes held
    // all 5 000 1 KB messages and nothing was shed).
    const sub = new Subscriber({ receiveHighWaterMark: 2, receiveBufferSize: 16384, receiveTimeout: 100, linger: 0 });
    sub.subscribe(ALL_TOPIC, channelTopic(channel));
    sub.connect(at.subscriber);
    type Got = { kind: 'message'; i: number } | { kind: 'tick'; seq: number; missed?: { channel: string; offset: number } };
    const got: Got[] = [];
    const offsets = new Map<number, number>();
    const read = async (untilMs: number, stopWhen: () => boolean = () => false): Promise<void> => {
      while (Date.now() < untilMs && !stopWhen()) {
        let frames: Buffer[];
        try {
          frames = await sub.receive();
        } catch {
          continue; // receiveTimeout
        }
        const header = decodeHeader(frames[1]!);
        const message = (offset: number, push: Buffer): void => {
          const i = (JSON.parse(push.toString('utf8')) as { data: { i: number } }).data.i;
          offsets.set(i, offset);
          got.push({ kind: 'message', i });
        };
        if (header?.kind === DownKind.Message) message(header.offset, frames[2]!);
        else if (header?.kind === DownKind.MessageBatch) {
          // A batch: its entries in order, as the edge reads them.
          const entries = decodeMessageBatch(frames[2]!);
          assert.ok(entries, 'a well-formed batch');
          batches++;
          for (const e of entries) message(e.offset, e.push);
        } else if (header?.kind === DownKind.Control) {
          const tick = tickOf(JSON.parse(frames[2]!.toString('utf8')) as Record<string, unknown>);
          if (tick) got.push({ kind: 'tick', seq: tick.seq, ...(tick.missed ? { missed: tick.missed } : {}) });
        }
      }
    };
    const shedBefore = await metric(at.http, shedMetric);
    try {
      // Live once a message comes through (the subscription reaches the director through the forwarder first),
      // and a tick (as every edge has one from long ago: the next one it gets is compared with it).
      const deadline = Date.now() + 10_000;
      const live = (): boolean => got.some((g) => g.kind === 'message') && got.some((g) => g.kind === 'tick');
      for (let i = 0; !live() && Date.now() < deadline; i++) {
        if (!got.some((g) => g.kind === 'message')) await publishBurst(channel, -1 - i, 1, 10, pad);
        await read(Date.now() + 300, live);
      }
      assert.ok(live(), 'the subscriber is live');
      const receivedBefore = hop === 'forwarder' ? await metric(at.http, 'tidings_forwarder_messages_total', { path: 'down' }) : 0;
      // Not reading now: the pipe to this peer fills, the hop waits, then sends on without it.
      await publishBurst(channel, 0, burst, 10, pad);
      const shed = await waitFor(async () => (await metric(at.http, shedMetric)) > shedBefore, 15_000);
      assert.ok(shed, `the ${hop} sent on without the stalled peer (got ${got.filter((g) => g.kind === 'message').length} messages)`);
      // Once the hop has handed the whole burst to ZeroMQ (the director has sequenced it when publishBurst returns; a
      // forwarder has received it when its count says so) and holds none of it, reading again at once, as a process
      // continued just then. (A count that merely stops growing is no sign: a hop waits up to SHED_GRACE_MS at a time.)
      const passedOn = await waitFor(
        async () =>
          (hop === 'director' || (await metric(at.http, 'tidings_forwarder_messages_total', { path: 'down' })) >= receivedBefore + burst) &&
          (await metric(at.http, `tidings_${hop}_queued_messages`, { queue: `${hop}-down` }, true)) === 0,
        30_000,
      );
      assert.ok(passedOn, `the ${hop} passed the whole burst on`);
      await read(Date.now() + 3000);
    } finally {
      sub.close();
    }
    const lastIndex = got.map((g) => g.kind).lastIndexOf('message');
    const lastGot = got[lastIndex] as { i: number };
    assert.ok(lastGot.i < burst - 1, `the peer missed the end of the burst (got up to ${lastGot.i} of ${burst}): ${trace(got, offsets)}`);
    if (batched) assert.ok(batches > 0, 'the messages came in batches');
    const lastOffset = offsets.get(lastGot.i)!;
    // What an edge does with them (Hub.onTick): after the last message it got, a tick skips a number or names a later offset.
    const tickBefore = (got.slice(0, lastIndex).filter((g) => g.kind === 'tick').pop() as { seq: number } | undefined)?.seq;
    const after = got.slice(lastIndex + 1);
    assert.ok(tickBefore !== undefined && after.some((g) => g.kind === 'tick'), `ticks came before and after the hole: ${trace(got, offsets)}`);
    let prev = tickBefore;
    let shown = false;
    for (const g of after) {
      if (g.kind !== 'tick') continue;
      if ((prev !== undefined && g.seq > prev + 1) || (g.missed?.channel === channel && g.missed.offset > lastOffset)) shown = true;
      prev = g.seq;
    }
    assert.ok(shown, `a tick after offset ${lastOffset} shows the hole: ${trace(got, offsets)}`);
  });
}
