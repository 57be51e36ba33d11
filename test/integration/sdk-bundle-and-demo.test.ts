/**
 * How the SDK is shipped: the browser bundle at <base>/tidings.js (served with
 * or without the demo), the Node entry `tidings/client`, and the demo routes,
 * which exist only with the demo setting and refuse bad input with catalog
 * errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startSingleNode, type SingleNode } from '../helpers/processes.js';

let plain: SingleNode;
let demo: SingleNode;

before(async () => {
  [plain, demo] = await Promise.all([startSingleNode(), startSingleNode({ TIDINGS_DEMO: 'true' })]);
});
after(async () => {
  await Promise.all([plain?.stop(), demo?.stop()]);
});

async function postToken(node: SingleNode, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${node.http}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

test('every edge serves the browser bundle; without the demo setting there is no demo', async () => {
  const js = await fetch(`${plain.http}/tidings.js`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
  const text = await js.text();
  assert.match(text, /export\s*\{[^}]*TidingsClient/);
  assert.doesNotMatch(text, /from\s*["'](node:|ws|msgpackr)/, 'the bundle is self-contained and free of Node imports');
  assert.equal((await fetch(`${plain.http}/`)).status, 404);
  assert.equal((await fetch(`${plain.http}/demo`)).status, 404);
  const token = await postToken(plain, { user: 'x' });
  assert.equal(token.status, 404);
  assert.equal(token.body.error.name, 'not_found');
  assert.equal((await fetch(`${plain.http}/tidings.js`, { method: 'DELETE' })).status, 405);
});

test('the Node entry tidings/client and the browser bundle both connect with ws', async () => {
  const entries = ['tidings/client', 'tidings/client/browser'];
  for (const entry of entries) {
    const mod = (await import(entry)) as typeof import('../../src/client/index.js');
    const res = await postToken(demo, { user: `node-${entries.indexOf(entry)}` });
    const c = new mod.TidingsClient({ urls: [demo.url], WebSocket, getToken: () => res.body.token as string, timeout: 5 });
    c.connect();
    const sub = c.subscribe('demo.bundle');
    const got: unknown[] = [];
    sub.on('message', (m) => got.push(m.data));
    await sub.ready(5);
    await c.publish('demo.bundle', { via: entry });
    const deadline = Date.now() + 5000;
    while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(got, [{ via: entry }], entry);
    c.disconnect();
  }
});

test('the demo serves its page and hands out tokens for demo.* rooms only', async () => {
  for (const path of ['/', '/demo']) {
    const page = await fetch(`${demo.http}${path}`);
    assert.equal(page.status, 200, path);
    assert.match(await page.text(), /<script type="module" src="demo\.js">/);
  }
  assert.equal((await fetch(`${demo.http}/demo.js`)).status, 200);
  assert.equal((await fetch(`${demo.http}/demo.css`)).status, 200);

  const ok = await postToken(demo, { user: 'Zoë Test', rooms: ['demo.extra'] });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.user, 'Zoë Test');
  assert.deepEqual(ok.body.rooms, ['demo.lobby', 'demo.random', 'demo.help']);
  const { TidingsClient } = await import('../../src/client/index.js');
  const c = new TidingsClient({ urls: [demo.url], WebSocket, getToken: () => ok.body.token as string, timeout: 5 });
  c.connect();
  await c.subscribe('demo.lobby').ready(5);
  await assert.rejects(c.subscribe('private.room').ready(5), (e: Error & { code?: number }) => e.code === 103);
  await assert.rejects(c.publish('news', 1), (e: Error & { code?: number }) => e.code === 103);
  c.disconnect();

  const bad: [unknown, number, string][] = [
    [{}, 400, 'invalid_user'],
    [{ user: '<script>' }, 400, 'invalid_user'],
    [{ user: 'x'.repeat(41) }, 400, 'invalid_user'],
    [{ user: 'a', rooms: ['private'] }, 400, 'invalid_channel'],
    [{ user: 'a', rooms: ['demo.no spaces'] }, 400, 'invalid_channel'],
    [{ user: 'a', rooms: 'demo.lobby' }, 400, 'bad_request'],
    [[1, 2], 400, 'bad_request'],
  ];
  for (const [body, status, name] of bad) {
    const r = await postToken(demo, body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.equal(r.body.error.name, name, JSON.stringify(body));
  }
  const notJson = await fetch(`${demo.http}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
  assert.equal((await notJson.json()).error.name, 'invalid_json');
  const big = await fetch(`${demo.http}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'a', pad: 'x'.repeat(10_000) }) });
  assert.equal(big.status, 413);
  assert.equal((await fetch(`${demo.http}/demo/token`)).status, 405);
});

test('under server_base_url the page, its assets and the bundle live below the base', async () => {
  const based = await startSingleNode({ TIDINGS_DEMO: 'true', TIDINGS_SERVER_BASE_URL: '/rt' });
  try {
    const bare = await fetch(`${based.http}/rt`, { redirect: 'manual' });
    assert.equal(bare.status, 301);
    assert.equal(bare.headers.get('location'), '/rt/');
    for (const path of ['/rt/', '/rt/demo', '/rt/demo.js', '/rt/tidings.js']) assert.equal((await fetch(`${based.http}${path}`)).status, 200, path);
    assert.equal((await fetch(`${based.http}/tidings.js`)).status, 404);
  } finally {
    await based.stop();
  }
});
