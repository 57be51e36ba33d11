/**
 * The client SDK in Node against a real single node and against tiny raw `ws`
 * servers written here (for a server that never pings, or never answers).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket, { WebSocketServer } from 'ws';
import { startSingleNode, TOKEN_SECRET, type SingleNode } from '../helpers/processes.js';
import { freePorts } from '../helpers/ports.js';
import { signToken } from '../../src/auth/sign.js';
import { TidingsClient, type ClientOptions, type ConnectionState, type MessagePush, type Reason } from '../../src/client/index.js';

let node: SingleNode;
const clients: TidingsClient[] = [];
const servers: WebSocketServer[] = [];

before(async () => {
  node = await startSingleNode({ TIDINGS_PING_INTERVAL: '1' });
});
after(async () => {
  for (const c of clients) c.disconnect();
  for (const s of servers) await new Promise((r) => s.close(r));
  await node?.stop();
});

const token = (user: string, ttl = 3600): Promise<string> => signToken({ secret: TOKEN_SECRET, user, ttl, subscribe: ['*'], publish: ['*'] });

/** A client with fast retries that records every state change. */
function client(opts: Partial<ClientOptions> & { urls: string[] }): { c: TidingsClient; states: { state: ConnectionState; reason: Reason }[]; urls: string[] } {
  const c = new TidingsClient({ WebSocket, initialRetryDelay: 0.05, maxRetryDelay: 0.2, timeout: 3, ...opts });
  clients.push(c);
  const states: { state: ConnectionState; reason: Reason }[] = [];
  const urls: string[] = [];
  c.on('state', (e) => states.push({ state: e.state, reason: e.reason }));
  c.on('connecting', (e) => urls.push(e.url));
  return { c, states, urls };
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('connects, subscribes, publishes and receives, with a reason on every state change', async () => {
  const { c, states } = client({ urls: [node.url], getToken: () => token('alice') });
  c.connect();
  await c.ready(5);
  assert.equal(c.info?.user, 'alice');
  assert.equal(c.info?.ping, 1);
  const sub = c.subscribe('sdk.basic');
  const got: MessagePush[] = [];
  sub.on('message', (m) => got.push(m));
  await sub.ready(5);
  const sent = await Promise.all([1, 2, 3].map((n) => c.publish('sdk.basic', { n })));
  await until(() => got.length === 3, 5000, '3 messages');
  assert.deepEqual(got.map((m) => m.offset), sent.map((s) => s.offset).sort((a, b) => a - b));
  assert.ok(got.every((m) => m.sender === 'alice'));
  assert.deepEqual(states.map((s) => [s.state, s.reason.name]), [
    ['connecting', 'connect_called'],
    ['connected', 'connected'],
  ]);
  // Unsubscribing before the subscribe reply, then subscribing again, ends subscribed once.
  const first = c.subscribe('sdk.toggle');
  first.unsubscribe();
  assert.equal(first.state, 'unsubscribed');
  const again = c.subscribe('sdk.toggle');
  assert.notEqual(again, first);
  const toggled: number[] = [];
  again.on('message', (m) => toggled.push(m.offset));
  await again.ready(5);
  const p = await c.publish('sdk.toggle', 'once');
  await until(() => toggled.length === 1, 5000, 'the message on the re-subscribed channel');
  assert.deepEqual(toggled, [p.offset]);
  // A forbidden channel ends the subscription with the server's code, without touching the connection.
  const limited = client({ urls: [node.url], getToken: () => signToken({ secret: TOKEN_SECRET, user: 'bob', ttl: 60, subscribe: ['ok.*'] }) });
  limited.c.connect();
  const denied = limited.c.subscribe('secret.room');
  await assert.rejects(denied.ready(5), (e: Error & { code?: number }) => e.code === 103);
  assert.equal(denied.state, 'unsubscribed');
  assert.equal(limited.c.state, 'connected');
  c.disconnect();
  assert.equal(c.state, 'disconnected');
  assert.equal(states.at(-1)?.reason.name, 'disconnect_called');
});

test('history returns the newest messages, or those after a position; it needs the history grant', async () => {
  const { c } = client({ urls: [node.url], getToken: () => token('hana') });
  c.connect();
  const sent: number[] = [];
  for (let i = 0; i < 5; i++) sent.push((await c.publish('sdk.history', { i })).offset);
  const last2 = await c.history('sdk.history', { limit: 2 });
  assert.deepEqual(last2.messages.map((m) => m.offset), sent.slice(3));
  assert.deepEqual(last2.messages.map((m) => m.data), [{ i: 3 }, { i: 4 }]);
  const after = await c.history('sdk.history', { since: { offset: sent[1]!, epoch: last2.epoch } });
  assert.deepEqual(after.messages.map((m) => m.offset), sent.slice(2));
  assert.equal(after.complete, true);
  await assert.rejects(c.history('sdk.history', { limit: 0 }), (e: Error & { code?: number }) => e.code === 102);
  const noGrant = client({ urls: [node.url], getToken: () => signToken({ secret: TOKEN_SECRET, user: 'ivan', ttl: 60, subscribe: ['other'], history: ['other'] }) });
  noGrant.c.connect();
  await assert.rejects(noGrant.c.history('sdk.history'), (e: Error & { code?: number }) => e.code === 103);
  c.disconnect();
  noGrant.c.disconnect();
});

test('fails over along the URL list, one URL per failed attempt, in order', async () => {
  const [dead1, dead2] = await freePorts(2);
  const urls = [`ws://127.0.0.1:${dead1}/ws`, `ws://127.0.0.1:${dead2}/ws`, node.url];
  const { c, urls: tried } = client({ urls, getToken: () => token('carol') });
  c.connect();
  await c.ready(5);
  assert.deepEqual(tried, urls);
  assert.equal(c.info?.url, node.url);
  c.disconnect();
});

test('the token supplier is called on every connect: an expired token is replaced by a fresh one', async () => {
  const issued: string[] = [];
  const { c, states } = client({
    urls: [node.url],
    getToken: async () => {
      // 1st: expired a minute ago; 2nd: expires in 2 s while connected; then fresh.
      const ttl = issued.length === 0 ? -60 : issued.length === 1 ? 2 : 3600;
      issued.push(`ttl ${ttl}`);
      return token('dave', ttl);
    },
  });
  c.connect();
  const sub = c.subscribe('sdk.refresh');
  const resubscribed: boolean[] = [];
  sub.on('subscribed', (e) => resubscribed.push(e.resubscribed && e.recovered));
  await until(() => issued.length >= 3 && c.connected && resubscribed.length >= 2, 10_000, 'a third token and a connected client');
  const reasons = states.map((s) => `${s.state}:${s.reason.code}:${s.reason.name}`);
  assert.ok(reasons.includes('connected:3009:connected'), reasons.join(' '));
  // The expired token is refused at connect (error 111), the short one is cut when it expires (close 4002).
  const failures = states.filter((s) => s.state === 'connecting').map((s) => s.reason.code);
  assert.ok(failures.includes(4002), `close 4002 seen: ${reasons.join(' ')}`);
  assert.equal(issued.length, 3);
  assert.deepEqual(resubscribed, [false, true], 'subscribed once, then resubscribed with recovery after the refresh');
  c.disconnect();
});

test('an invalid token stops reconnecting (token_invalid is final)', async () => {
  let calls = 0;
  const { c, states } = client({
    urls: [node.url],
    getToken: () => {
      calls++;
      return 'not.a.token';
    },
  });
  c.connect();
  await until(() => c.state === 'disconnected', 5000, 'disconnected');
  assert.equal(states.at(-1)?.reason.code, 110);
  assert.equal(states.at(-1)?.reason.reconnect, false);
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(calls, 1, 'no reconnect after token_invalid');
  await assert.rejects(c.publish('x', 1), (e: Error & { code?: number }) => e.code === 113);
});

/** A raw server that answers connect (batched with a ping in one frame), pings every `pingEveryMs` (0: never) and ignores other commands. */
async function rawServer(pingEveryMs: number): Promise<{ url: string; connections: () => number; pongs: () => number }> {
  const [port] = await freePorts(1);
  const wss = new WebSocketServer({ host: '127.0.0.1', port });
  servers.push(wss);
  let connections = 0;
  let pongs = 0;
  wss.on('connection', (ws) => {
    connections++;
    const timer = pingEveryMs > 0 ? setInterval(() => ws.send('{"type":"ping"}'), pingEveryMs) : null;
    ws.on('close', () => timer && clearInterval(timer));
    ws.on('message', (raw) => {
      // A frame may carry several commands, one per line (docs/protocol.md): the SDK sends its first subscribes with connect.
      for (const line of raw.toString().split('\n')) {
        const m = JSON.parse(line) as { id?: number; method?: string; type?: string };
        if (m.type === 'pong') pongs++;
        if (m.method === 'connect') {
          const result = { client: `raw-${connections}`, user: 'eve', ping: 1, idle_timeout: 60, expires: null, node: 'raw' };
          ws.send(`${JSON.stringify({ id: m.id, result })}\n{"type":"ping"}`);
        }
      }
    });
  });
  await new Promise((r) => wss.once('listening', r));
  return { url: `ws://127.0.0.1:${port}/ws`, connections: () => connections, pongs: () => pongs };
}

test('a server that stops pinging is dropped after ping + margin and reconnected; pings are answered with pongs', async () => {
  const silent = await rawServer(0);
  const { c, states } = client({ urls: [silent.url], pingMargin: 0.3 });
  c.connect();
  await c.ready(5);
  const connectedAt = Date.now();
  await until(() => states.some((s) => s.reason.name === 'no_ping'), 4000, 'the watchdog');
  const silentFor = Date.now() - connectedAt;
  assert.ok(silentFor >= 1200 && silentFor < 3000, `watchdog after ${silentFor} ms (ping 1 s + margin 0.3 s)`);
  assert.equal(states.find((s) => s.reason.name === 'no_ping')?.reason.code, 3002);
  await until(() => silent.connections() >= 2 && c.connected, 4000, 'a reconnect');
  c.disconnect();

  const lively = await rawServer(300);
  const l = client({ urls: [lively.url], pingMargin: 0.3 });
  l.c.connect();
  await l.c.ready(5);
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(l.c.state, 'connected', 'a pinging server keeps the connection');
  assert.equal(lively.connections(), 1);
  assert.ok(lively.pongs() >= 5, `pongs: ${lively.pongs()}`);
  // The raw server never answers publish: the call times out with code 114.
  const t0 = Date.now();
  await assert.rejects(l.c.publish('any', 1, { timeout: 0.3 }), (e: Error & { code?: number }) => e.code === 114);
  assert.ok(Date.now() - t0 < 1500);
  l.c.disconnect();
});

test('close 4006 (message gap): the client reconnects and resubscribes from its last offset; replayed duplicates are dropped', async () => {
  const [port] = await freePorts(1);
  const wss = new WebSocketServer({ host: '127.0.0.1', port });
  servers.push(wss);
  await new Promise((r) => wss.once('listening', r));
  const subscribeParams: unknown[] = [];
  let connections = 0;
  const push = (offset: number): string => JSON.stringify({ type: 'message', channel: 'gap', offset, epoch: 'E1', sender: null, time: Date.now(), data: { offset } });
  wss.on('connection', (ws) => {
    const n = ++connections;
    ws.on('message', (raw) => {
      for (const line of raw.toString().split('\n')) answer(JSON.parse(line) as { id: number; method: string; params: Record<string, unknown> });
    });
    const answer = (m: { id: number; method: string; params: Record<string, unknown> }): void => {
      if (m.method === 'connect') ws.send(JSON.stringify({ id: m.id, result: { client: `c${n}`, user: 'gus', ping: 25, idle_timeout: 60, expires: null, node: 'raw' } }));
      if (m.method !== 'subscribe') return;
      subscribeParams.push(m.params);
      if (n === 1) {
        // Live from offset 10; two messages, then the edge notices a hole and closes 4006.
        ws.send(JSON.stringify({ id: m.id, result: { channel: 'gap', offset: 10, epoch: 'E1' } }));
        ws.send(`${push(11)}\n${push(12)}`);
        setTimeout(() => ws.close(4006, 'messages were missed'), 50);
      } else {
        // Recovery replays 12 again (the client must drop it), then 13 and 14.
        ws.send(JSON.stringify({ id: m.id, result: { channel: 'gap', offset: 14, epoch: 'E1', recovered: true, replayed: 3 } }));
        ws.send(`${push(12)}\n${push(13)}\n${push(14)}`);
      }
    };
  });
  const { c, states } = client({ urls: [`ws://127.0.0.1:${port}/ws`] });
  c.connect();
  const sub = c.subscribe('gap');
  const offsets: number[] = [];
  const subscribed: { resubscribed: boolean; recovered: boolean }[] = [];
  sub.on('message', (m) => offsets.push(m.offset));
  sub.on('subscribed', (e) => subscribed.push({ resubscribed: e.resubscribed, recovered: e.recovered }));
  await until(() => offsets.length >= 4, 5000, 'four messages');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(offsets, [11, 12, 13, 14]);
  assert.deepEqual(subscribeParams, [{ channel: 'gap' }, { channel: 'gap', recover: { offset: 12, epoch: 'E1' } }]);
  assert.deepEqual(subscribed, [{ resubscribed: false, recovered: false }, { resubscribed: true, recovered: true }]);
  const gap = states.find((s) => s.reason.code === 4006);
  assert.equal(gap?.state, 'connecting');
  assert.equal(gap?.reason.name, 'message_gap');
  c.disconnect();
});

/**
 * A server that records every frame and answers connect and subscribe; `refuseFirst`: the first connection's
 * connect is refused (113, transient) and every command behind it with 101, as an edge answers commands
 * pipelined behind a connect that failed.
 */
async function recordingServer(refuseFirst: boolean): Promise<{ url: string; frames: string[][]; subscribes: () => number }> {
  const [port] = await freePorts(1);
  const wss = new WebSocketServer({ host: '127.0.0.1', port });
  servers.push(wss);
  await new Promise((r) => wss.once('listening', r));
  const frames: string[][] = [];
  let connections = 0;
  wss.on('connection', (ws) => {
    const n = ++connections;
    let refused = false;
    ws.on('message', (raw) => {
      const lines = raw.toString().split('\n');
      frames.push(lines);
      const out: string[] = [];
      for (const line of lines) {
        const m = JSON.parse(line) as { id: number; method: string; params: { channel?: string } };
        if (m.method === 'connect') {
          refused = refuseFirst && n === 1;
          out.push(JSON.stringify(refused ? { id: m.id, error: { code: 113, name: 'unavailable', message: 'try again' } } : { id: m.id, result: { client: `c${n}`, user: 'pip', ping: 25, idle_timeout: 60, expires: null, node: 'raw', max_inflight: 128 } }));
        } else if (refused) out.push(JSON.stringify({ id: m.id, error: { code: 101, name: 'unauthorized', message: 'not connected' } }));
        else if (m.method === 'subscribe') out.push(JSON.stringify({ id: m.id, result: { channel: m.params.channel, offset: 0, epoch: 'E1' } }));
      }
      ws.send(out.join('\n'));
    });
  });
  const subscribes = (): number => frames.flat().filter((l) => l.includes('"method":"subscribe"')).length;
  return { url: `ws://127.0.0.1:${port}/ws`, frames, subscribes };
}

test('subscriptions made before connect go in connect\'s frame, at most 32, each subscribed once; a refused connect loses none', async () => {
  const server = await recordingServer(false);
  const { c } = client({ urls: [server.url] });
  const subs = Array.from({ length: 40 }, (_, i) => c.subscribe(`pip.${i}`));
  c.connect();
  await Promise.all(subs.map((s) => s.ready(5)));
  const first = server.frames[0]!;
  assert.equal(first.length, 33, 'connect and 32 subscribes in the first frame');
  assert.ok(first[0]!.includes('"method":"connect"'));
  assert.equal(server.subscribes(), 40, 'every channel subscribed once: none again after the connect reply');
  c.disconnect();

  // The first connect is refused: the subscribes behind it are answered 101, which must not end the subscriptions;
  // on the next connection they go behind connect again and succeed.
  const flaky = await recordingServer(true);
  const second = client({ urls: [flaky.url] });
  const errors: unknown[] = [];
  second.c.on('error', (e) => errors.push(e));
  const sub = second.c.subscribe('pip.flaky');
  second.c.connect();
  await sub.ready(5);
  assert.equal(sub.state, 'subscribed');
  assert.deepEqual(flaky.frames.map((f) => f.length), [2, 2], 'connect + subscribe on each connection');
  assert.deepEqual(errors, [], 'the refused session\'s 101 reached no subscription');
  second.c.disconnect();
});
