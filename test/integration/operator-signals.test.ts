/**
 * What an operator reads from one node: its logs (connects and refused
 * authentications with their reasons, repeats limited, one `component` key per
 * line) and its /metrics (messages and bytes delivered, subscriptions, refused
 * authentications, closes by code), and deploy/grafana-dashboard.json, whose
 * every query names a metric the node really exports.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CLI, API_KEY, startSingleNode, type SingleNode } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { metric } from '../helpers/http.js';

const ROOT = resolve(CLI, '..', '..', '..', '..');
let node: SingleNode;

before(async () => {
  node = await startSingleNode({ TIDINGS_LOG_LEVEL: 'debug' });
});

after(async () => {
  await node?.stop();
});

/** The node's JSON log lines so far. */
function logLines(): Array<Record<string, unknown>> {
  return node.proc
    .text()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function publish(channel: string, data: unknown, key = API_KEY): Promise<Response> {
  // As curl -d sends it: no JSON content type.
  return fetch(`${node.http}/api/publish`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-www-form-urlencoded' }, body: JSON.stringify({ channel, data }) });
}

test('metrics: deliveries, bytes, subscriptions, refused authentications and closes by code', async () => {
  const labelsBefore = {
    delivered: await metric(node.http, 'tidings_edge_delivered_messages_total', { kind: 'message' }),
    bytes: await metric(node.http, 'tidings_edge_sent_bytes_total'),
    token: await metric(node.http, 'tidings_edge_auth_refused_total', { method: 'token' }),
    apiKey: await metric(node.http, 'tidings_edge_auth_refused_total', { method: 'api_key' }),
    normal: await metric(node.http, 'tidings_edge_closes_total', { code: '1000' }),
    away: await metric(node.http, 'tidings_edge_closes_total', { code: '1001' }),
  };
  const alice = await TestClient.connect(node.url, 'alice');
  const bob = await TestClient.connect(node.url, 'bob');
  await alice.call('subscribe', { channel: 'news' });
  await alice.call('subscribe', { channel: 'sport' });
  await bob.call('subscribe', { channel: 'news' });
  await until('3 subscriptions', async () => (await metric(node.http, 'tidings_edge_subscriptions')) === 3);

  for (let i = 0; i < 4; i++) assert.equal((await publish('news', { n: i, pad: 'x'.repeat(100) })).status, 200);
  await alice.waitFor(() => alice.messages('news').length === 4 && bob.messages('news').length === 4, 5000, '4 messages each');
  // 8 pushes (4 messages x 2 subscribers), each more than 100 bytes on the wire.
  await until('8 deliveries', async () => (await metric(node.http, 'tidings_edge_delivered_messages_total', { kind: 'message' })) - labelsBefore.delivered === 8);
  assert.ok((await metric(node.http, 'tidings_edge_sent_bytes_total')) - labelsBefore.bytes >= 8 * 100, 'bytes sent counted');

  // Refused: three bad tokens on the websocket, one wrong API key over HTTP.
  for (let i = 0; i < 3; i++) {
    const c = await TestClient.open(node.url);
    const r = await c.request('connect', { token: 'not.a.token' });
    assert.ok(r.error, 'a bad token is refused');
    c.close();
  }
  assert.equal((await publish('news', {}, 'wrong-key')).status, 401);
  assert.equal((await metric(node.http, 'tidings_edge_auth_refused_total', { method: 'token' })) - labelsBefore.token, 3);
  assert.equal((await metric(node.http, 'tidings_edge_auth_refused_total', { method: 'api_key' })) - labelsBefore.apiKey, 1);

  alice.ws.close(1000);
  bob.ws.close(1001);
  await Promise.all([alice.waitClosed(), bob.waitClosed()]);
  await until('closes counted by code', async () => (await metric(node.http, 'tidings_edge_closes_total', { code: '1001' })) - labelsBefore.away === 1);
  assert.equal((await metric(node.http, 'tidings_edge_closes_total', { code: '1000' })) - labelsBefore.normal, 1);
  await until('subscriptions released', async () => (await metric(node.http, 'tidings_edge_subscriptions')) === 0);
  const text = await (await fetch(`${node.http}/metrics`)).text();
  assert.match(text, /# TYPE tidings_edge_closes_total counter/);
  assert.match(text, /# TYPE tidings_edge_subscriptions gauge/);
});

test('logs: connects at debug with the user, refusals with their reason (repeats limited), one component key per line', async () => {
  const c = await TestClient.connect(node.url, 'dora');
  await until('a connect line', () => logLines().some((l) => l['msg'] === 'connected' && l['user'] === 'dora'));
  const connected = logLines().find((l) => l['msg'] === 'connected' && l['user'] === 'dora')!;
  assert.equal(connected['level'], 20, 'connects are logged at debug');
  assert.ok(typeof connected['conn'] === 'string' && typeof connected['edge'] === 'string', 'bound to the edge and the connection');
  c.close();

  // Eight more bad tokens: with the three above, the first five of the minute are written, the rest counted.
  for (let i = 0; i < 8; i++) {
    const b = await TestClient.open(node.url);
    await b.request('connect', { token: `bad.token.${i}` });
    b.close();
  }
  const tokenRefusals = (): Array<Record<string, unknown>> => logLines().filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('token refused: '));
  // The edge's log lines reach this process through a pipe, written asynchronously (pino): wait for the five
  // expected, then see that no more come once every refusal was counted.
  await until('5 refusal lines', () => tokenRefusals().length >= 5).catch(() => undefined);
  await until('11 refusals counted', async () => (await metric(node.http, 'tidings_edge_auth_refused_total', { method: 'token' })) === 11);
  await new Promise((r) => setTimeout(r, 200));
  const refusals = tokenRefusals();
  assert.equal(refusals.length, 5, `rate-limited to 5 lines a minute, got ${refusals.length}: ${JSON.stringify(refusals.map((l) => [l['time'], l['reason'], l['detail']]))}`);
  assert.equal(refusals[0]!['level'], 30, 'a refused token is logged at info');
  assert.ok(typeof refusals[0]!['detail'] === 'string' && (refusals[0]!['detail'] as string).length > 0, 'with the reason in words');
  assert.equal(await metric(node.http, 'tidings_edge_auth_refused_total', { method: 'token' }), 11, 'every refusal is still counted');

  const keyRefusal = logLines().find((l) => l['msg'] === 'api key refused: bad_api_key');
  assert.ok(keyRefusal, 'a wrong API key is logged');
  assert.match(String(keyRefusal['detail']), /the key given is not in api_keys$/);
  assert.equal(keyRefusal['path'], '/api/publish');
  assert.equal(keyRefusal['source'], '127.0.0.1');

  for (const line of node.proc.text().split('\n').filter((l) => l.startsWith('{'))) {
    assert.ok((line.match(/"component":/g) ?? []).length <= 1, `one component key: ${line.slice(0, 200)}`);
  }
});

test('the Grafana dashboard: valid, and every metric it queries is exported by a node', async () => {
  const dash = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana-dashboard.json'), 'utf8')) as {
    uid: string;
    panels: Array<{ id: number; title: string; gridPos: object; targets: Array<{ expr: string; datasource: { uid: string } }> }>;
    templating: { list: Array<{ name: string }> };
  };
  assert.ok(dash.uid && dash.panels.length >= 10);
  assert.equal(new Set(dash.panels.map((p) => p.id)).size, dash.panels.length, 'panel ids are unique');
  assert.ok(dash.templating.list.some((v) => v.name === 'datasource'), 'the data source is chosen on import');
  const exported = new Set(
    (await (await fetch(`${node.http}/metrics`)).text())
      .split('\n')
      .filter((l) => l.startsWith('# TYPE '))
      .map((l) => l.split(' ')[2]!),
  );
  const queried = new Set<string>();
  for (const p of dash.panels) {
    assert.ok(p.targets.length > 0, `${p.title} has a query`);
    for (const t of p.targets) {
      assert.equal(t.datasource.uid, '${datasource}');
      for (const m of t.expr.match(/\btidings_[a-z0-9_]+/g) ?? []) queried.add(m);
    }
  }
  for (const wanted of ['tidings_edge_delivered_messages_total', 'tidings_edge_sent_bytes_total', 'tidings_edge_subscriptions', 'tidings_edge_auth_refused_total', 'tidings_edge_closes_total']) {
    assert.ok(queried.has(wanted), `the dashboard shows ${wanted}`);
  }
  // Forwarder metrics come from forwarder nodes only: those are looked up in the forwarder's code.
  const forwarderCode = readFileSync(join(ROOT, 'dist/src/forwarder/forwarder.js'), 'utf8');
  const missing = [...queried].filter((m) => !exported.has(m) && !(m.startsWith('tidings_forwarder_') && forwarderCode.includes(`'${m}'`)));
  assert.deepEqual(missing, [], 'metrics the dashboard queries but no node exports');
});
