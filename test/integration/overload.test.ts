/**
 * overload_lag_ms: while an edge's event loop runs late, new websocket
 * upgrades are refused with 503, 215 overloaded and Retry-After; clients
 * already connected are kept, and upgrades are taken again once the loop
 * is back on time. The edge worker is stopped (SIGSTOP) for 600 ms while an
 * upgrade waits in its listen queue: when it runs again its loop is 600 ms
 * late, exactly what a burst of thousands of reconnects does to it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { startSingleNode, sleep, type SingleNode } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';

let node: SingleNode;
before(async () => {
  node = await startSingleNode({ TIDINGS_OVERLOAD_LAG_MS: '200', TIDINGS_METRICS: 'true' });
});
after(async () => {
  await node?.stop();
});

/** The node's edge worker (its only child process). */
function edgeWorkerPid(): number {
  const children = readFileSync(`/proc/${node.proc.pid}/task/${node.proc.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  assert.equal(children.length, 1, 'one edge worker');
  return children[0]!;
}

interface UpgradeAnswer {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

/** A websocket upgrade request; resolves with the HTTP answer (101 or an error response). */
function upgrade(): Promise<UpgradeAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(`${node.http}/ws`, {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': Buffer.alloc(16, 7).toString('base64') },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, retryAfter: undefined, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer to the upgrade')));
    req.end();
  });
}

test('a late event loop refuses new upgrades with 503, 215 and Retry-After, keeps its clients, and takes upgrades again once on time', async () => {
  const live = await TestClient.connect(node.url, 'live-user');
  await live.call('subscribe', { channel: 'calm' });
  assert.equal((await upgrade()).status, 101, 'an upgrade on a loop on time is taken');

  const pid = edgeWorkerPid();
  process.kill(pid, 'SIGSTOP');
  let answer: Promise<UpgradeAnswer>;
  try {
    answer = upgrade();
    await sleep(600);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const refused = await answer;
  assert.equal(refused.status, 503, `refused while the loop was late: ${JSON.stringify(refused)}`);
  const retry = Number(refused.retryAfter);
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 4, `Retry-After 1-4 s, got ${refused.retryAfter}`);
  const error = (JSON.parse(refused.body) as { error: { code: number; name: string; retry_after: number } }).error;
  assert.equal(error.code, 215);
  assert.equal(error.name, 'overloaded');
  assert.equal(error.retry_after, retry);

  // The client already connected was not touched.
  assert.deepEqual(await live.call('ping', {}), {});
  // Once the loop is on time again, upgrades are taken (bounded: 40 tries).
  let status = 0;
  for (let i = 0; i < 40 && status !== 101; i++) {
    status = (await upgrade()).status;
    if (status !== 101) await sleep(100);
  }
  assert.equal(status, 101, 'upgrades are taken again once the loop is on time');
  const metrics = await (await fetch(`${node.http}/metrics`)).text();
  const refusals = /^tidings_edge_overload_refusals_total(?:{[^}]*})? (\d+)/m.exec(metrics);
  assert.ok(refusals && Number(refusals[1]) >= 1, `refusals are counted: ${metrics.split('\n').filter((l) => l.includes('overload')).join(' / ')}`);
  live.close();
});
