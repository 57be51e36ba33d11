/**
 * How an edge batches its presence reports (src/edge/state-link.ts): one
 * event report is unanswered at a time, and the events that come meanwhile
 * leave together in the next one once it is answered, whatever its outcome.
 *
 * An edge-only node (a real process) runs against a director played by this
 * test (a ROUTER on the node's command address, an XPUB on its subscriber
 * address), which records every `edge_report` and can hold its answer: so the
 * test sees exactly which reports leave the edge and when.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Router, XPublisher } from 'zeromq';
import { serveEdgeOnly, type TidingsProcess } from '../helpers/processes.js';
import { freePorts } from '../helpers/ports.js';
import { TestClient } from '../helpers/client.js';
import { decodeCommandBatch, isBatchFrames } from '../../src/cluster/batch.js';
import { DownKind, encodeHeader } from '../../src/cluster/wire.js';
import { channelTopic, userTopic } from '../../src/cluster/topics.js';

interface Event {
  op: string;
  conn: string;
  channel?: string;
}

/** An `edge_report` carrying events, as it reached the director, and how to answer it. */
interface Report {
  events: Event[];
  answer: (ok: boolean) => Promise<void>;
}

let node: TidingsProcess;
let url = '';
let xpub: XPublisher;
let router: Router;
const clients: TestClient[] = [];
/** Every event report received so far, in order. */
const reports: Report[] = [];
/** While true, event reports are recorded and left unanswered (the test answers them). */
let holding = false;

function reply(route: Buffer[], id: number, ok: boolean, body: unknown): Promise<void> {
  const idBuf = Buffer.alloc(4);
  idBuf.writeUInt32BE(id);
  const payload = ok ? body : { code: 113, name: 'unavailable', message: 'the test refused this report' };
  return router.send([...route, idBuf, Buffer.from(ok ? 'ok' : 'error'), Buffer.from(JSON.stringify(payload))]);
}

/** The fake director's answer to one command, or null when the test holds it. */
async function command(route: Buffer[], id: number, method: string, body: Buffer): Promise<void> {
  const b = JSON.parse(body.toString('utf8') || 'null') as Record<string, unknown> | null;
  if (method === 'probe' && b) {
    // Confirm the edge's subscription (a channel, or a user's bucket) down the SUB socket, as the director does.
    const topic = b['kind'] === 'channel' ? channelTopic(String(b['name'])) : userTopic(String(b['name']));
    await xpub.send([topic, encodeHeader(DownKind.Probe, 0, b['kind'] === 'channel' ? 'E1' : ''), Buffer.from(JSON.stringify({ token: b['token'] }))]);
    return reply(route, id, true, { offset: 0, epoch: b['kind'] === 'channel' ? 'E1' : '' });
  }
  if (method === 'edge_report' && b && Array.isArray(b['events']) && b['events'].length > 0) {
    const report: Report = { events: b['events'] as Event[], answer: (ok) => reply(route, id, ok, { resync: false }) };
    reports.push(report);
    if (!holding) await report.answer(true);
    return;
  }
  // Snapshots, heartbeats, pings: answered at once.
  return reply(route, id, true, method === 'edge_report' ? { resync: false } : method === 'ping' ? { time: Date.now() } : {});
}

async function serveCommands(): Promise<void> {
  for await (const frames of router) {
    const route = frames.slice(0, frames.length - 3);
    const [id, method, body] = frames.slice(frames.length - 3) as [Buffer, Buffer, Buffer];
    if (isBatchFrames(id, method)) {
      // A batch's requests are answered one by one (the edge settles each by its id).
      for (const e of decodeCommandBatch(body)) await command(route, e.id, e.method, e.body);
    } else {
      await command(route, id.readUInt32BE(0), method.toString(), body);
    }
  }
}

before(async () => {
  const [port, sub, cmd, pub] = await freePorts(4);
  xpub = new XPublisher({ linger: 0 });
  router = new Router({ linger: 0 });
  await xpub.bind(`tcp://127.0.0.1:${sub}`);
  await router.bind(`tcp://127.0.0.1:${cmd}`);
  void serveCommands().catch(() => undefined);
  void (async () => {
    for await (const _ of xpub); // the edge's subscriptions: an XPUB needs them read
  })().catch(() => undefined);
  node = await serveEdgeOnly({ http: port, subscriber: sub, publisher: pub, command: cmd });
  url = `ws://127.0.0.1:${port}/ws`;
  // The link's first events go in a full snapshot; from then on, in event reports.
  const first = await TestClient.connect(url, 'first');
  clients.push(first);
  await first.call('subscribe', { channel: 'warm' });
});

after(async () => {
  for (const c of clients) c.close();
  await node?.stop();
  xpub?.close();
  router?.close();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Connect `user` and send its subscribe, without waiting for the subscribe's reply. */
async function subscribing(user: string, channel: string): Promise<{ client: TestClient; answered: Promise<unknown>; done: () => boolean }> {
  const client = await TestClient.connect(url, user);
  clients.push(client);
  let settled = false;
  const answered = client.call('subscribe', { channel }).finally(() => (settled = true));
  answered.catch(() => undefined);
  return { client, answered, done: () => settled };
}

async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const ofOp = (r: Report, op: string): string[] => r.events.filter((e) => e.op === op).map((e) => e.conn).sort();
const idOf = (s: { client: TestClient }): string => s.client.session!.client;

test('while a report is unanswered, later events wait for it and then leave together in one report', async () => {
  reports.length = 0;
  holding = true;
  // a's connect is reported (attach) at once; that report is held, so a's subscribe (join) waits behind it.
  const a = await subscribing('user-a', 'room');
  await until(() => reports.length === 1, "a's first report");
  assert.deepEqual(ofOp(reports[0]!, 'attach'), [idOf(a)]);
  const others = [await subscribing('user-b', 'room'), await subscribing('user-c', 'room'), await subscribing('user-d', 'room')];
  await sleep(400);
  assert.equal(reports.length, 1, 'no report leaves while one is unanswered');
  assert.ok(!a.done() && others.every((o) => !o.done()), 'no subscribe is answered before the director applied its join');
  await reports[0]!.answer(true);
  await until(() => reports.length === 2, 'the next report');
  const second = reports[1]!;
  assert.deepEqual(ofOp(second, 'join'), [a, ...others].map(idOf).sort(), 'the joins that waited leave together in one report');
  assert.deepEqual(ofOp(second, 'attach'), others.map(idOf).sort(), 'with the attaches that waited');
  await sleep(200);
  assert.ok(!a.done() && others.every((o) => !o.done()), 'the subscribes wait for that report');
  holding = false;
  await second.answer(true);
  await Promise.all([a, ...others].map((o) => o.answered));
  assert.equal(reports.length, 2);
});

test('a report the director refuses does not hold up the events after it', async () => {
  reports.length = 0;
  holding = true;
  const e = await subscribing('user-e', 'room2');
  await until(() => reports.length === 1, "e's first report");
  const f = await subscribing('user-f', 'room2');
  await sleep(200);
  assert.equal(reports.length, 1);
  holding = false;
  await reports[0]!.answer(false);
  // The events that waited go on (or with the resync that follows the refusal) and their clients are answered.
  await e.answered;
  await f.answered;
  // The link is free again: a join made now leaves in an event report and is answered.
  const g = await subscribing('user-g', 'room2');
  await g.answered;
  assert.ok(reports.some((r) => ofOp(r, 'join').includes(idOf(g))), "g's join reached the director in an event report");
});
