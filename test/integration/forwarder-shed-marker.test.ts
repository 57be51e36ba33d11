/**
 * The forwarder's own shed marker (src/forwarder/tick-relay.ts), on its own.
 *
 * A real forwarder node (no director role, no edge: it serves its metrics
 * itself) follows a scripted
 * director: a raw XPUB on the director's subscriber address that sends
 * channel messages and ticks exactly when the test says. A raw SUB stands
 * for an edge worker on the node's subscriber address. The edge stops
 * reading, the director sends a burst and, on purpose, no tick while the
 * forwarder sends on without the edge (zmq_block_timeout); the edge reads
 * again and the director sends its next tick. Only the forwarder's marker
 * can show the edge the messages it lost at the end of the stream: without
 * it the director's next tick arrives numbered right after the last one.
 * (In a whole cluster the director's own ticks, shed by the forwarder while
 * the edge is stalled, often show the hole as well: block-timeout.test.ts.)
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Subscriber, XPublisher } from 'zeromq';
import { freePorts } from '../helpers/ports.js';
import { forwarderNodeEnv, serve, type TidingsProcess } from '../helpers/processes.js';
import { metric } from '../helpers/http.js';
import { DownKind, decodeHeader, encodeHeader } from '../../src/cluster/wire.js';
import { tickFrames, tickOf } from '../../src/cluster/ticks.js';
import { ALL_TOPIC, channelTopic } from '../../src/cluster/topics.js';

const CHANNEL = 'marker.channel';
const EPOCH = 'e1';
const RUN = randomBytes(4).toString('hex');
/** Far more than the pipes and socket buffers between the forwarder and a stalled edge hold. */
const BURST = 6000;
const PAD = 'x'.repeat(1000);

let node: TidingsProcess | undefined;
const sockets: Array<{ close(): void }> = [];
after(async () => {
  for (const s of sockets) s.close();
  await node?.stop();
});

async function until(pred: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("a forwarder that sends on without a stalled edge marks it: the edge's next tick shows the messages lost at the end of the stream", async () => {
  const [port, sub, pub, cmd, dSub, dPub, dCmd] = await freePorts(7);
  const director = new XPublisher({ sendHighWaterMark: 0, linger: 0 });
  sockets.push(director);
  await director.bind(`tcp://127.0.0.1:${dSub}`);
  const env = forwarderNodeEnv('node1', '127.0.0.1', [port!, sub!, pub!, cmd!], 1, [
    { subscriber: `tcp://127.0.0.1:${dSub}`, publisher: `tcp://127.0.0.1:${dPub}`, command: `tcp://127.0.0.1:${dCmd}` },
  ]);
  node = serve('node1', { ...env, TIDINGS_EDGE_ENABLED: 'false', TIDINGS_ZMQ_HIGH_WATER_MARK: '1000', TIDINGS_ZMQ_BLOCK_TIMEOUT: '0.2' });
  await node.waitFor(/"msg":"node ready"/, 30_000);
  const http = `http://127.0.0.1:${port}`;

  // The edge: small buffers, so the burst is far more than they hold.
  const edge = new Subscriber({ receiveHighWaterMark: 10, receiveBufferSize: 16384, receiveTimeout: 100, linger: 0 });
  sockets.push(edge);
  edge.subscribe(ALL_TOPIC, channelTopic(CHANNEL));
  edge.connect(`tcp://127.0.0.1:${sub}`);
  type Got = { kind: 'message'; offset: number } | { kind: 'tick'; seq: number; missed?: { channel: string; offset: number } };
  const got: Got[] = [];
  const read = async (untilMs: number, stopWhen: () => boolean = () => false): Promise<void> => {
    while (Date.now() < untilMs && !stopWhen()) {
      let frames: Buffer[];
      try {
        frames = await edge.receive();
      } catch {
        continue; // receiveTimeout
      }
      const header = decodeHeader(frames[1]!);
      if (header?.kind === DownKind.Message) got.push({ kind: 'message', offset: header.offset });
      else if (header?.kind === DownKind.Control) {
        const tick = tickOf(JSON.parse(frames[2]!.toString('utf8')) as Record<string, unknown>);
        if (tick) got.push({ kind: 'tick', seq: tick.seq, ...(tick.missed ? { missed: tick.missed } : {}) });
      }
    }
  };
  const message = (offset: number): Promise<void> =>
    director.send([channelTopic(CHANNEL), encodeHeader(DownKind.Message, offset, EPOCH), Buffer.from(JSON.stringify({ type: 'message', channel: CHANNEL, offset, data: PAD }))]);

  // Live: the edge's subscriptions reached the director through the forwarder; a tick and a message pass.
  let seq = 0;
  let offset = 0;
  for (let i = 0; i < 100 && !(got.some((g) => g.kind === 'tick') && got.some((g) => g.kind === 'message')); i++) {
    await director.send(tickFrames(RUN, ++seq));
    await message(++offset);
    await read(Date.now() + 100);
  }
  assert.ok(got.some((g) => g.kind === 'tick') && got.some((g) => g.kind === 'message'), 'the edge is live through the forwarder');

  // The edge stops reading; the burst, and no tick, until the forwarder has sent on without it and passed the rest.
  const shedBefore = await metric(http, 'tidings_forwarder_shed_total');
  const downBefore = await metric(http, 'tidings_forwarder_messages_total', { path: 'down' });
  for (let i = 0; i < BURST; i++) await message(++offset);
  await until(async () => (await metric(http, 'tidings_forwarder_shed_total')) > shedBefore, 15_000, 'the forwarder sent on without the stalled edge');
  // Every message received by the forwarder and none waiting in it: each went to ZeroMQ, to the edge's pipe or
  // shed. (A count that merely stops growing is no sign: the forwarder waits up to SHED_GRACE_MS at a time.)
  await until(
    async () =>
      (await metric(http, 'tidings_forwarder_messages_total', { path: 'down' })) === downBefore + BURST &&
      (await metric(http, 'tidings_forwarder_queued_messages', { queue: 'forwarder-down' }, true)) === 0,
    30_000,
    'the forwarder passed the whole burst on',
  );

  // The edge reads again; then the director's next tick.
  await read(Date.now() + 1000);
  await director.send(tickFrames(RUN, ++seq));
  await read(Date.now() + 1000, () => got.filter((g) => g.kind === 'tick').length >= 2 && (got[got.length - 1]!.kind === 'tick' && (got[got.length - 1] as { seq: number }).seq > 1));

  const lastIndex = got.map((g) => g.kind).lastIndexOf('message');
  const last = (got[lastIndex] as { offset: number }).offset;
  assert.ok(last < offset, `the edge lost the end of the burst (got up to offset ${last} of ${offset})`);
  // What an edge does with ticks (Hub.onTick): after the last message it got, a number skipped or a later offset named.
  const tickBefore = (got.slice(0, lastIndex).filter((g) => g.kind === 'tick').pop() as { seq: number } | undefined)?.seq;
  const ticksAfter = got.slice(lastIndex + 1).filter((g): g is Extract<Got, { kind: 'tick' }> => g.kind === 'tick');
  assert.ok(tickBefore !== undefined && ticksAfter.length > 0, `ticks before and after the hole: ${JSON.stringify(got.filter((g) => g.kind === 'tick'))}`);
  let prev = tickBefore;
  const shown = ticksAfter.some((t) => {
    const hole = t.seq > prev + 1 || (t.missed?.channel === CHANNEL && t.missed.offset > last);
    prev = t.seq;
    return hole;
  });
  assert.ok(shown, `a tick after offset ${last} shows the hole: ticks ${JSON.stringify([tickBefore, ...ticksAfter])}`);
});
