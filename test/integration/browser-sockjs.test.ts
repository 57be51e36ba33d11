/**
 * SockJS in a real browser (Debian's chromium through playwright-core) against
 * a director and two forwarder nodes with two edge workers each:
 * - sockjs-client (the build the edge serves) over each transport it offers
 *   in Chromium, talking to the Seth-Pusher endpoint;
 * - the SDK on a network whose proxy refuses every websocket upgrade: it falls
 *   back to SockJS, chats with a native client, and when its node is killed
 *   fails over to the other node (still over SockJS) and recovers every
 *   message published meanwhile, in order, once.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { serve, TOKEN_SECRET, API_KEY, type TidingsProcess } from '../helpers/processes.js';
import { freePorts } from '../helpers/ports.js';
import { postJson } from '../helpers/http.js';
import { TestClient } from '../helpers/client.js';
import { signToken } from '../../src/auth/sign.js';

const CHROMIUM = '/usr/bin/chromium';
interface Node {
  proc: TidingsProcess;
  port: number;
  url: string;
  http: string;
}
let director: Node;
let nodes: Node[] = [];
/** Every process started, stopped in after() even when start-up failed half way. */
const procs: TidingsProcess[] = [];

/** A director (HTTP API only) and two forwarder nodes with two edge workers each. */
async function startCluster(env: Record<string, string>): Promise<void> {
  const [dport, dsub, dpub, dcmd, ...ports] = await freePorts(12);
  const d = { sub: `tcp://127.0.0.1:${dsub}`, pub: `tcp://127.0.0.1:${dpub}`, cmd: `tcp://127.0.0.1:${dcmd}` };
  const common = { ...env, TIDINGS_TOKEN_SECRET: TOKEN_SECRET, TIDINGS_API_KEYS: API_KEY, TIDINGS_SERVER_HOST: '127.0.0.1' };
  const node = (name: string, port: number, extra: Record<string, string>): Node => {
    const proc = serve(name, { ...common, TIDINGS_SERVER_PORT: String(port), TIDINGS_NODE_ID: name, ...extra });
    procs.push(proc);
    return { proc, port, url: `ws://127.0.0.1:${port}/ws`, http: `http://127.0.0.1:${port}` };
  };
  director = node('director', dport!, { TIDINGS_EDGE_ENABLED: 'false', TIDINGS_SUBSCRIBER_ADDRESS: d.sub, TIDINGS_PUBLISHER_ADDRESS: d.pub, TIDINGS_COMMAND_ADDRESS: d.cmd });
  for (let i = 0; i < 2; i++) {
    const [port, sub, pub, cmd] = ports.slice(i * 4, i * 4 + 4) as [number, number, number, number];
    nodes.push(
      node(`node${i + 1}`, port, {
        TIDINGS_DIRECTOR_ENABLED: 'false',
        TIDINGS_FORWARDER_ENABLED: 'true',
        TIDINGS_WORKERS: '2',
        TIDINGS_SUBSCRIBER_ADDRESS: `tcp://127.0.0.1:${sub}`,
        TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${pub}`,
        TIDINGS_COMMAND_ADDRESS: `tcp://127.0.0.1:${cmd}`,
        TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: d.sub,
        TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: d.pub,
        TIDINGS_DIRECTOR_COMMAND_ADDRESS: d.cmd,
      }),
    );
  }
  await Promise.all(procs.map((p) => p.waitFor(/"msg":"node ready"/, 60000)));
}
let browser: Browser;
const proxies: Server[] = [];
const upgrades = new Set<import('node:net').Socket | import('node:stream').Duplex>();
const toClose: Array<{ close(): void }> = [];

/** An HTTP proxy to `port` that refuses every websocket upgrade, as some corporate proxies do. */
function blockingProxy(listen: number, port: number): Promise<Server> {
  const srv = createServer((req, res) => {
    const up = request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
      r.on('error', () => res.destroy());
    });
    up.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(502);
        res.end();
      } else res.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  });
  srv.on('upgrade', (_req, socket) => {
    upgrades.add(socket);
    socket.on('close', () => upgrades.delete(socket));
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  return new Promise((r) => srv.listen(listen, '127.0.0.1', () => r(srv)));
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  await startCluster({ TIDINGS_SETHPUSHER_ENABLED: 'true', TIDINGS_ALLOW_ANONYMOUS: 'true', TIDINGS_PING_INTERVAL: '2', TIDINGS_HISTORY_SIZE: '500' });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
});

after(async () => {
  for (const c of toClose) c.close();
  await browser?.close();
  for (const p of proxies) {
    p.closeAllConnections();
    p.close();
  }
  for (const s of upgrades) s.destroy();
  await Promise.all(procs.map((p) => p.stop()));
});

async function pageOn(origin: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(`${origin}/connect`); // any page of the edge's origin (SockJS' welcome text)
  return page;
}

const CHROMIUM_TRANSPORTS = ['websocket', 'xhr-streaming', 'eventsource', 'iframe-eventsource', 'htmlfile', 'iframe-htmlfile', 'xhr-polling', 'iframe-xhr-polling', 'jsonp-polling'];

test('sockjs-client in Chromium over each of its transports reaches Seth-Pusher on a node with two workers', async () => {
  const node = nodes[1]!;
  const page = await pageOn(node.http);
  await page.addScriptTag({ url: '/sockjs.min.js' });
  await page.exposeFunction('publishTo', async (text: string) => {
    const r = await postJson(`${director.http}/api/channels/browser/`, { hello: text }, { 'x-api-key': API_KEY });
    return r.status;
  });
  // One transport at a time: a browser holds at most six connections per host, and streaming transports keep one each.
  const results = await page.evaluate(async (transports) => {
    const w = window as any;
    const out: string[] = [];
    const until = async (pred: () => boolean) => {
      const deadline = Date.now() + 10000;
      while (!pred() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return pred();
    };
    for (const t of transports) {
      const got: any[] = [];
      const sock = new w.SockJS('/connect', null, { transports: [t] });
      const opened = await new Promise<boolean>((resolve) => {
        sock.onopen = () => resolve(true);
        sock.onclose = () => resolve(false);
      });
      if (!opened) {
        out.push(`${t}: did not open`);
        continue;
      }
      sock.onmessage = (e: any) => got.push(JSON.parse(e.data));
      sock.send(JSON.stringify({ type: 'connect', subscriber_id: `page-${t}` }));
      sock.send(JSON.stringify({ type: 'subscribe', channel: 'browser' }));
      const subscribed = await until(() => got.some((m) => m.type === 'subscribe' && m.target_id === `page-${t}`));
      const status = await w.publishTo(t);
      const received = await until(() => got.some((m) => m.hello === t));
      out.push(`${t}: ${sock.transport} subscribed ${subscribed} published ${status} received ${received}`);
      sock.close();
    }
    return out;
  }, CHROMIUM_TRANSPORTS);
  assert.deepEqual(
    results,
    CHROMIUM_TRANSPORTS.map((t) => `${t}: ${t} subscribed true published 200 received true`),
  );
  await page.context().close();
});

test('the SDK behind a proxy that refuses websockets chats over SockJS, fails over to the other node and recovers', async () => {
  const [n1, n2] = nodes as [Node, Node];
  const [p1, p2] = await freePorts(2);
  proxies.push(await blockingProxy(p1!, n1.port), await blockingProxy(p2!, n2.port));
  const origin = `http://127.0.0.1:${p1}`;
  const token = await signToken({ secret: TOKEN_SECRET, user: 'walled', ttl: 600, subscribe: ['*'], publish: ['*'] });
  const page = await pageOn(origin);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.evaluate(
    async ({ urls, token }) => {
      const { TidingsClient } = await import('/tidings.js' as string);
      const w = window as any;
      w.got = [];
      w.transports = [];
      const client = new TidingsClient({ urls, fallback: true, getToken: () => token, initialRetryDelay: 0.2, maxRetryDelay: 1 });
      client.on('connected', (e: any) => w.transports.push(`${e.transport} ${e.url}`));
      const sub = client.subscribe('walled');
      sub.on('message', (m: any) => w.got.push(m.data));
      client.connect();
      await sub.ready(20);
      w.client = client;
    },
    { urls: [`ws://127.0.0.1:${p1}/ws`, `ws://127.0.0.1:${p2}/ws`], token },
  );
  assert.deepEqual(await page.evaluate(() => (window as any).transports), [`sockjs ws://127.0.0.1:${p1}/ws`]);
  assert.equal(await page.evaluate(() => typeof (window as any).SockJS), 'function', 'sockjs-client was loaded from the edge on demand');

  // Chat with a native websocket client on the other node.
  const native = await TestClient.connect(n2.url, 'native', { subscribe: ['*'], publish: ['*'] });
  toClose.push(native);
  await native.call('subscribe', { channel: 'walled' });
  await page.evaluate(() => (window as any).client.publish('walled', { from: 'page' }));
  await native.waitFor(() => native.messages('walled').some((m) => (m.data as any).from === 'page'), 10000, 'the page message');
  assert.equal(native.messages('walled').find((m) => (m.data as any).from === 'page')!.sender, 'walled');
  await native.call('publish', { channel: 'walled', data: { from: 'native' } });
  await page.waitForFunction(() => (window as any).got.some((d: any) => d.from === 'native'));

  // Kill the page's node while a worker publishes; the page moves to node 2 (over SockJS again) and recovers.
  let n = 0;
  const publishing = (async () => {
    for (; n < 40; n++) {
      await postJson(`${director.http}/api/publish`, { channel: 'walled', data: { n } }, { 'x-api-key': API_KEY });
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  await n1.proc.kill9();
  await publishing;
  await page.waitForFunction(() => (window as any).got.filter((d: any) => typeof d.n === 'number').length >= 40, undefined, { timeout: 30_000 });
  const ns = await page.evaluate(() => (window as any).got.filter((d: any) => typeof d.n === 'number').map((d: any) => d.n));
  assert.deepEqual(ns, Array.from({ length: 40 }, (_, i) => i), 'every message once, in order');
  const transports: string[] = await page.evaluate(() => (window as any).transports);
  assert.equal(transports.at(-1), `sockjs ws://127.0.0.1:${p2}/ws`);
  assert.deepEqual(errors, []);
  native.close();
  await page.evaluate(() => (window as any).client.disconnect());
});
