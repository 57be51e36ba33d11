/**
 * Defence in depth, with the publish doors bypassed: a real director, edge
 * and forwarder run in this process (real ZeroMQ and websocket sockets on
 * 127.0.0.1) so the test can hand the director's sequencer a message no door
 * would let in, and can break a socket under a loop.
 * - The edge skips, for MessagePack clients only, a push it cannot encode
 *   (counted); every other listener still gets it and the next message
 *   reaches everyone. History and recovery of it over MessagePack answer an
 *   error or skip it (counted): no unhandled rejection in the edge.
 * - A loop that dies anyway (its socket closed under it) takes readiness down
 *   and calls the owner's fatal handler, which ends the process (exit 3) in
 *   `tidings serve` and its edge workers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { resolveConfig, type Config } from '../../src/config/resolve.js';
import { createLogger } from '../../src/log.js';
import { Director, type PublishOutcome } from '../../src/director/director.js';
import { installDirectorFeatures, type DirectorFeatures } from '../../src/director/features.js';
import { EdgeServer } from '../../src/edge/edge-server.js';
import { installEdgeFeatures } from '../../src/edge/features.js';
import { Forwarder } from '../../src/forwarder/forwarder.js';
import { freePorts } from '../helpers/ports.js';
import { TOKEN_SECRET } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { MsgpackClient } from '../helpers/msgpack-client.js';
import { CsClient, csRequest } from '../helpers/channelstream.js';
import { sign } from '../../src/compat/signer.js';
import { ErrorCodes } from '../../src/protocol/errors.js';

const SECRET = 'loop-guard-test-secret';
const CHANNEL = 'bypass';
const log = createLogger('silent');

let config: Config;
let director: Director;
let features: DirectorFeatures;
let edge: EdgeServer;
const directorRegistry = new Registry();
const edgeRegistry = new Registry();
const fatal: string[] = [];
let http: string;
let url: string;

function deep(depth: number, marker: string): unknown {
  let v: unknown = { marker };
  for (let i = 1; i < depth; i++) v = [v];
  return v;
}

async function failures(registry: Registry, loop: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'tidings_loop_failures_total');
  return (m?.values.find((v) => v.labels['loop'] === loop)?.value as number | undefined) ?? 0;
}

const has = (marker: string) => (x: unknown) => JSON.stringify(x).includes(`"${marker}"`);

before(async () => {
  const [port, sub, pub, cmd] = await freePorts(4);
  config = resolveConfig({
    env: {
      TIDINGS_SERVER_PORT: String(port),
      TIDINGS_SUBSCRIBER_ADDRESS: `tcp://127.0.0.1:${sub}`,
      TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${pub}`,
      TIDINGS_COMMAND_ADDRESS: `tcp://127.0.0.1:${cmd}`,
      TIDINGS_TOKEN_SECRET: TOKEN_SECRET,
      TIDINGS_SECRET: SECRET,
      TIDINGS_LOG_LEVEL: 'silent',
    },
  });
  director = new Director(config, log, directorRegistry);
  director.onFatal = (reason) => fatal.push(`director: ${reason}`);
  features = installDirectorFeatures(director, directorRegistry);
  await director.start();
  edge = new EdgeServer({ config, log, registry: edgeRegistry, edgeId: 'test/e0', websocket: true, onFatal: (reason) => fatal.push(`edge: ${reason}`) });
  installEdgeFeatures(edge, config, log);
  await edge.start();
  http = `http://127.0.0.1:${port}`;
  url = `ws://127.0.0.1:${port}/ws`;
});

after(async () => {
  await edge?.stop();
  features?.stop();
  await director?.stop();
});

test('a push no MessagePack client can take is skipped for those clients only; the loop serves on', async () => {
  // MessagePack first: without the per-listener guard its failure would cost the listeners after it this push.
  const packed = await MsgpackClient.connect(url, 'packed');
  await packed.call('subscribe', { channel: CHANNEL });
  const json = await TestClient.connect(url, 'json');
  await json.call('subscribe', { channel: CHANNEL });
  const csPath = '/connect';
  const reg = await csRequest(http, csPath, { username: 'cs', channels: [CHANNEL], channel_configs: { [CHANNEL]: { store_history: true, history_size: 100 } } }, { secret: SECRET, signed: sign(csPath, SECRET, Math.floor(Date.now() / 1000)) });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  const cs = await CsClient.open(url, reg.body.conn_id);
  for (let i = 0; i < 40 && !cs.items.some(has('warm')); i++) {
    director.publishChannel(CHANNEL, JSON.stringify({ n: 'warm' }), null, false);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(cs.items.some(has('warm')));

  // Straight into the sequencer, past every door: 99 levels, beyond MessagePack's 100 once wrapped in a push.
  // The memory engine answers at once (a position, not a promise).
  const bad = director.publishChannel(CHANNEL, JSON.stringify(deep(99, 'too-deep')), 'bypass', false) as PublishOutcome;
  const next = director.publishChannel(CHANNEL, JSON.stringify({ n: 'next' }), 'bypass', false) as PublishOutcome;
  await json.waitFor(() => json.pushes.some(has('next')), 5000, 'next on the JSON client');
  await packed.waitFor(() => packed.pushes.some(has('next')), 5000, 'next on the MessagePack client');
  await cs.waitFor(() => cs.items.some(has('next')), 5000, 'next on the channelstream client');
  assert.ok(json.pushes.some(has('too-deep')), 'the JSON client got the deep message (JSON carries it)');
  assert.ok(cs.items.some(has('too-deep')), 'so did the channelstream client');
  assert.ok(!packed.pushes.some(has('too-deep')), 'the MessagePack client did not');
  assert.equal(await failures(edgeRegistry, 'edge-delivery'), 1, 'counted once');

  // History over MessagePack holds it: the reply cannot be encoded, so an error is answered, once.
  const h = await packed.request('history', { channel: CHANNEL, limit: 10 });
  assert.equal(h.error?.code, ErrorCodes.INTERNAL.code, JSON.stringify(h));
  assert.equal(packed.replies.filter((r) => r.error?.message.includes('could not be encoded')).length, 1);
  assert.equal(await failures(edgeRegistry, 'edge-reply'), 1);
  assert.deepEqual(await packed.call('ping'), {}, 'the client is still served');

  // Recovery over MessagePack from before it: it is skipped (counted), the rest replayed in order.
  const late = await MsgpackClient.connect(url, 'late');
  const r = await late.call('subscribe', { channel: CHANNEL, recover: { offset: bad.offset - 1, epoch: bad.epoch } });
  assert.equal(r.offset, next.offset);
  await late.waitFor(() => late.pushes.some(has('next')), 5000, 'next replayed');
  assert.deepEqual(late.pushes.map((p) => p.offset), [next.offset]);
  assert.equal(await failures(edgeRegistry, 'edge-replay'), 1);

  // A stored value too deep even for JSON.stringify (10 000 levels): history keeps the bytes as
  // published and splices them into its replies, so the director never re-encodes it and serves on.
  director.publishChannel('deeper', `${'['.repeat(10000)}${']'.repeat(10000)}`, 'bypass', false);
  const hj = await json.request('history', { channel: 'deeper' });
  assert.equal(hj.error, undefined, 'history of the deep value answered');
  assert.equal((hj.result as { messages: unknown[] }).messages.length, 1);
  assert.equal(await failures(directorRegistry, 'director-replies'), 0);
  // A command whose result cannot be encoded (a cycle here): the caller gets an error, counted once.
  const cyclic: Record<string, unknown> = {};
  cyclic['self'] = cyclic;
  director.handlers.register('test_unencodable', async () => cyclic);
  await assert.rejects(edge.commands.request('test_unencodable', {}), (err: { code?: number }) => err.code === ErrorCodes.INTERNAL.code);
  assert.equal(await failures(directorRegistry, 'director-replies'), 1);
  assert.deepEqual(await json.call('ping'), {});

  const ready = await fetch(`${http}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(fatal, []);
  for (const c of [packed, json, cs, late]) c.close();
});

test('a dead edge SUB loop takes readiness down and asks the owner to end the process', async () => {
  // Break the loop's socket under it, as a fault would.
  (edge.hub as unknown as { sub: { close(): void } }).sub.close();
  const deadline = Date.now() + 5000;
  while (fatal.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(fatal, ['edge: edge-sub loop died: the socket stopped delivering messages']);
  const r = await fetch(`${http}/readyz`);
  assert.equal(r.status, 503);
  assert.equal(((await r.json()) as { dead: string }).dead, 'edge-sub');
});

test('dead director and forwarder loops ask the node to end the process', async () => {
  const [sub, pub, cmd] = await freePorts(3);
  const fwdConfig = resolveConfig({
    env: {
      TIDINGS_DIRECTOR_ENABLED: 'false',
      TIDINGS_FORWARDER_ENABLED: 'true',
      TIDINGS_SUBSCRIBER_ADDRESS: `tcp://127.0.0.1:${sub}`,
      TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${pub}`,
      TIDINGS_COMMAND_ADDRESS: `tcp://127.0.0.1:${cmd}`,
      TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: config.subscriber_address,
      TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: config.publisher_address,
      TIDINGS_DIRECTOR_COMMAND_ADDRESS: config.command_address,
    },
  });
  const forwarder = new Forwarder(fwdConfig, log, new Registry());
  const forwarderFatal: string[] = [];
  forwarder.onFatal = (reason) => forwarderFatal.push(reason);
  await forwarder.start();
  // The commands path: ROUTER in, DEALER out.
  (forwarder as unknown as { sockets: Array<{ close(): void }> }).sockets[4]!.close();
  (director as unknown as { router: { close(): void } }).router.close();
  const deadline = Date.now() + 5000;
  while ((forwarderFatal.length === 0 || fatal.length < 2) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.match(forwarderFatal[0] ?? '', /^forwarder-cmd loop died/);
  assert.match(fatal[1] ?? '', /^director: director-commands loop died/);
  await forwarder.stop();
});
