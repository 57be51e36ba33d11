/**
 * Seth-Pusher clients (sockjs-client from npm, as Seth-Pusher's browser
 * clients use) at /connect on a two-node cluster with two edge workers per
 * node (node A: director + edges, subscriber ids proven by tokens; node B:
 * forwarder + edges, allow_anonymous), over each transport sockjs-client
 * offers in Node; SockJS' bounds; and the SDK falling back to SockJS in Node.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import SockJS from 'sockjs-client';
import { freePorts } from '../helpers/ports.js';
import { serve, API_KEY, TOKEN_SECRET, type TidingsProcess } from '../helpers/processes.js';
import { postJson, metric } from '../helpers/http.js';
import { signToken } from '../../src/auth/sign.js';
import { TidingsClient } from '../../src/client/index.js';
import type { SockJSConstructor, WebSocketConstructor } from '../../src/client/index.js';

interface Node {
  proc: TidingsProcess;
  http: string;
  ws: string;
}
let A: Node;
let B: Node;
/** Every process started, stopped in after() even when start-up failed half way. */
const procs: TidingsProcess[] = [];
const open: Array<{ close(): void }> = [];

before(async () => {
  const [aPort, aSub, aPub, aCmd, bPort, bSub, bPub, bCmd] = await freePorts(8);
  const common = { TIDINGS_WORKERS: '2', TIDINGS_TOKEN_SECRET: TOKEN_SECRET, TIDINGS_API_KEYS: API_KEY, TIDINGS_SETHPUSHER_ENABLED: 'true', TIDINGS_SERVER_HOST: '127.0.0.1' };
  const a = { sub: `tcp://127.0.0.1:${aSub}`, pub: `tcp://127.0.0.1:${aPub}`, cmd: `tcp://127.0.0.1:${aCmd}` };
  const pa = serve('A', { ...common, TIDINGS_SERVER_PORT: String(aPort), TIDINGS_SUBSCRIBER_ADDRESS: a.sub, TIDINGS_PUBLISHER_ADDRESS: a.pub, TIDINGS_COMMAND_ADDRESS: a.cmd });
  const pb = serve('B', {
    ...common,
    TIDINGS_SERVER_PORT: String(bPort),
    TIDINGS_DIRECTOR_ENABLED: 'false',
    TIDINGS_FORWARDER_ENABLED: 'true',
    TIDINGS_SUBSCRIBER_ADDRESS: `tcp://127.0.0.1:${bSub}`,
    TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${bPub}`,
    TIDINGS_COMMAND_ADDRESS: `tcp://127.0.0.1:${bCmd}`,
    TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: a.sub,
    TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: a.pub,
    TIDINGS_DIRECTOR_COMMAND_ADDRESS: a.cmd,
    TIDINGS_ALLOW_ANONYMOUS: 'true',
    TIDINGS_CLIENT_SEND_BUFFER: '65536',
  });
  procs.push(pa, pb);
  await Promise.all([pa.waitFor(/"msg":"node ready"/, 60000), pb.waitFor(/"msg":"node ready"/, 60000)]);
  A = { proc: pa, http: `http://127.0.0.1:${aPort}`, ws: `ws://127.0.0.1:${aPort}` };
  B = { proc: pb, http: `http://127.0.0.1:${bPort}`, ws: `ws://127.0.0.1:${bPort}` };
});

after(async () => {
  for (const c of open) c.close();
  await Promise.all(procs.map((p) => p.stop()));
});

const tokenFor = (user: string) => signToken({ secret: TOKEN_SECRET, user, ttl: 600, subscribe: ['*'] });

/** A Seth-Pusher page's client: sockjs-client, JSON messages in and out. */
class SethClient {
  readonly received: any[] = [];
  closeCode: number | null = null;
  private constructor(readonly sock: any) {
    sock.onmessage = (e: { data: string }) => this.received.push(JSON.parse(e.data));
    sock.onclose = (e: { code: number }) => (this.closeCode = e.code);
  }
  static async open(base: string, transport: string): Promise<SethClient> {
    const sock = new SockJS(`${base}/connect`, undefined, { transports: [transport] });
    await new Promise<void>((resolve, reject) => {
      sock.onopen = () => resolve();
      sock.onclose = (e: { code: number; reason: string }) => reject(new Error(`${transport}: closed ${e.code} ${e.reason}`));
    });
    const c = new SethClient(sock);
    open.push(c);
    return c;
  }
  send(msg: unknown): void {
    this.sock.send(JSON.stringify(msg));
  }
  has(pred: (m: any) => boolean): boolean {
    return this.received.some(pred);
  }
  async waitFor(pred: (m: any) => boolean, what: string, timeoutMs = 10000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    while (!this.has(pred)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.received.slice(-5))} close ${this.closeCode}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.received.find(pred);
  }
  async waitClosed(timeoutMs = 10000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.closeCode === null) {
      if (Date.now() > deadline) throw new Error('not closed');
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.closeCode;
  }
  close(): void {
    this.sock.close();
  }
}

const NODE_TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];
const notice = (type: string, id: string, body: string) => (m: any) => m.type === type && m.target_id === id && m.body === body;

test('sockjs-client over websocket, xhr-streaming, xhr-polling and eventsource on both nodes (two workers each); REST publishes reach channels and subscriber ids', async () => {
  const clients: Array<[string, SethClient]> = [];
  for (const t of NODE_TRANSPORTS) {
    const a = await SethClient.open(A.http, t);
    a.send({ type: 'connect', subscriber_id: `a-${t}`, token: await tokenFor(`a-${t}`) });
    const b = await SethClient.open(B.http, t);
    b.send({ type: 'connect', subscriber_id: `b-${t}` });
    clients.push([`a-${t}`, a], [`b-${t}`, b]);
  }
  for (const [id, c] of clients) {
    await c.waitFor(notice('connect', id, `User: ${id} connected.`), `${id} connected`);
    c.send({ type: 'subscribe', channel: 'alerts' });
    await c.waitFor(notice('subscribe', id, `User: ${id} subscribed to alerts`), `${id} subscribed`);
  }
  const r = await postJson(`${A.http}/api/channels/alerts/`, { my: 'data' }, { 'x-api-key': API_KEY });
  assert.deepEqual([r.status, r.body.status], [200, 200]);
  const u = await postJson(`${B.http}/api/users/a-xhr-polling/`, { to: 'one', sender_id: 'ops' }, { 'x-api-key': API_KEY });
  assert.equal(u.status, 200);
  for (const [id, c] of clients) {
    await c.waitFor((m) => m.my === 'data', `${id}: the channel message`);
    if (id === 'a-xhr-polling') await c.waitFor((m) => m.to === 'one', 'the user message');
  }
  await postJson(`${A.http}/api/channels/alerts/`, { my: 'barrier' }, { 'x-api-key': API_KEY });
  for (const [id, c] of clients) {
    await c.waitFor((m) => m.my === 'barrier', `${id}: barrier`);
    if (id !== 'a-xhr-polling') assert.ok(!c.has((m) => m.to === 'one'), `${id} did not get a-xhr-polling's message`);
  }
  // Sessions spread over several requests met their owning worker through a sibling.
  assert.ok((await metric(A.http, 'tidings_edge_sibling_forwards_total')) > 0, 'node A passed requests between workers');
  assert.ok((await metric(B.http, 'tidings_edge_sibling_forwards_total')) > 0, 'node B passed requests between workers');
});

test('notices: connect and disconnect to every Seth-Pusher client of the cluster, subscribe and unsubscribe to the channel', async () => {
  const watcher = await SethClient.open(B.http, 'xhr-streaming');
  watcher.send({ type: 'connect', subscriber_id: 'watcher' });
  watcher.send({ type: 'subscribe', channel: 'room' });
  await watcher.waitFor(notice('subscribe', 'watcher', 'User: watcher subscribed to room'), 'watcher subscribed');
  const carol = await SethClient.open(A.http, 'websocket');
  carol.send({ type: 'connect', subscriber_id: 'carol', token: await tokenFor('carol') });
  await watcher.waitFor(notice('connect', 'carol', 'User: carol connected.'), 'connect notice on the other node');
  carol.send({ type: 'subscribe', channel: 'room' });
  await watcher.waitFor(notice('subscribe', 'carol', 'User: carol subscribed to room'), 'subscribe notice');
  carol.send({ type: 'unsubscribe', channel: 'room' });
  await watcher.waitFor(notice('unsubscribe', 'carol', 'User: carol unsubscribed from room'), 'unsubscribe notice');
  carol.send({ type: 'dance' });
  const err = await carol.waitFor((m) => m.type === 'error', 'error answer');
  assert.equal(err.error.name, 'method_not_found');
  carol.close();
  await watcher.waitFor(notice('disconnect', 'carol', 'User: carol disconnected.'), 'disconnect notice');
});

test('the subscriber id must be proven (token), unless anonymous access is on', async () => {
  const claim = await SethClient.open(A.http, 'xhr-polling');
  claim.send({ type: 'connect', subscriber_id: 'mallory' });
  assert.equal((await claim.waitFor((m) => m.type === 'error', 'refusal')).error.code, 169);
  assert.equal(await claim.waitClosed(), 4020);
  const other = await SethClient.open(A.http, 'websocket');
  other.send({ type: 'connect', subscriber_id: 'mallory', token: await tokenFor('alice') });
  assert.equal((await other.waitFor((m) => m.type === 'error', 'refusal')).error.code, 169);
  assert.equal(await other.waitClosed(), 4020);
  const early = await SethClient.open(B.http, 'websocket');
  early.send({ type: 'subscribe', channel: 'room' });
  assert.equal((await early.waitFor((m) => m.type === 'error', 'not connected')).error.code, 170);
  early.send({ type: 'connect', subscriber_id: 'mallory' });
  await early.waitFor(notice('connect', 'mallory', 'User: mallory connected.'), 'anonymous connect on B');
});

async function xhr(base: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
  return { status: res.status, text: await res.text() };
}

test('SockJS around the protocol: info, raw websocket, the welcome page, channelstream keeps POST /connect, bounded bodies and send buffers', async () => {
  const info = await (await fetch(`${A.http}/connect/info`)).json();
  assert.equal(info.websocket, true);
  assert.equal(await (await fetch(`${A.http}/connect`)).text(), 'Welcome to SockJS!\n');
  const cs = await fetch(`${A.http}/connect`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  assert.ok(cs.status === 401 || cs.status === 403, `channelstream answered POST /connect (${cs.status})`);

  // The raw websocket: one JSON message per frame, no SockJS framing.
  const raw = new WebSocket(`${A.ws}/connect/websocket`);
  const frames: string[] = [];
  raw.on('message', (d: Buffer) => frames.push(d.toString()));
  await new Promise((r) => raw.once('open', r));
  raw.send(JSON.stringify({ type: 'connect', subscriber_id: 'rawuser', token: await tokenFor('rawuser') }));
  const deadline = Date.now() + 10000;
  while (!frames.includes(JSON.stringify({ body: 'User: rawuser connected.', target_id: 'rawuser', type: 'connect' })) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.ok(frames.length > 0 && JSON.parse(frames[0]!).target_id === 'rawuser', JSON.stringify(frames));
  raw.close();

  // A request body past the bound is refused (sockjs-node alone would read it whole).
  const sid = randomBytes(6).toString('hex');
  assert.equal((await xhr(B.http, `/connect/000/${sid}/xhr`)).text, 'o\n');
  const big = await xhr(B.http, `/connect/000/${sid}/xhr_send`, JSON.stringify(['x'.repeat(500_000)]));
  assert.equal(big.status, 413);

  // A client that stops polling while its channel floods is cut off at client_send_buffer (64 KiB here): 4005.
  const send = (msg: unknown) => xhr(B.http, `/connect/000/${sid}/xhr_send`, JSON.stringify([JSON.stringify(msg)]));
  assert.equal((await send({ type: 'connect', subscriber_id: 'sleepy' })).status, 204);
  assert.equal((await send({ type: 'subscribe', channel: 'flood' })).status, 204);
  let polled = '';
  for (let i = 0; i < 10 && !polled.includes('subscribed to flood'); i++) polled += (await xhr(B.http, `/connect/000/${sid}/xhr`)).text;
  assert.ok(polled.includes('User: sleepy subscribed to flood'), polled);
  for (let i = 0; i < 100; i++) {
    const r = await postJson(`${A.http}/api/channels/flood/`, { n: i, pad: 'p'.repeat(1000) }, { 'x-api-key': API_KEY });
    assert.equal(r.status, 200);
  }
  let rest = '';
  for (let i = 0; i < 5 && !rest.includes('c[4005'); i++) rest += (await xhr(B.http, `/connect/000/${sid}/xhr`)).text;
  assert.ok(rest.includes('c[4005,"send buffer limit exceeded"]'), rest.slice(-300));
  assert.ok(rest.length < 3 * 65536, `what the client got is bounded (${rest.length} characters)`);
});

test('the SDK falls back to SockJS in Node when websockets fail, and works as usual', async () => {
  /** A WebSocket class for a network that refuses every upgrade. */
  class BlockedWebSocket {
    readyState = 0;
    onopen: ((ev: unknown) => void) | null = null;
    onmessage: ((ev: unknown) => void) | null = null;
    onclose: ((ev: unknown) => void) | null = null;
    onerror: ((ev: unknown) => void) | null = null;
    constructor() {
      setTimeout(() => {
        this.readyState = 3;
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: '' });
      }, 5);
    }
    send(): void {}
    close(): void {}
  }
  const client = new TidingsClient({
    urls: [`${A.ws}/ws`],
    WebSocket: BlockedWebSocket as unknown as WebSocketConstructor,
    fallback: SockJS as unknown as SockJSConstructor,
    getToken: () => signToken({ secret: TOKEN_SECRET, user: 'sdk-user', ttl: 600, subscribe: ['*'], publish: ['*'] }),
    initialRetryDelay: 0.05,
  });
  open.push({ close: () => client.disconnect() });
  const got: unknown[] = [];
  const sub = client.subscribe('sdk-news');
  sub.on('message', (m) => got.push(m.data));
  client.connect();
  await client.ready(20);
  assert.equal(client.info?.transport, 'sockjs');
  await sub.ready();
  await client.publish('sdk-news', { text: 'over SockJS' });
  await postJson(`${B.http}/api/publish`, { channel: 'sdk-news', data: { text: 'from the API' } }, { 'x-api-key': API_KEY });
  const deadline = Date.now() + 10000;
  while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got, [{ text: 'over SockJS' }, { text: 'from the API' }]);
  client.disconnect();
});
