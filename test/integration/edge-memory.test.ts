/**
 * worker_semi_space_mb: V8 grows an edge's young generation to 16 MB x 2
 * while connections pour in and keeps it, which is most of the memory per
 * connection at 10 000 idle connections. The setting caps it. Shown with the
 * edge's own heap-space metric after 2 500 connections, with the default cap
 * and, as the control that the check can fail, with the cap off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import WebSocket from 'ws';
import { startSingleNode } from '../helpers/processes.js';

const CONNECTIONS = 2500;
const MB = 2 ** 20;

async function newSpaceAfterConnections(semiSpaceMb: string): Promise<number> {
  const node = await startSingleNode({ TIDINGS_ALLOW_ANONYMOUS: 'true', TIDINGS_WORKER_SEMI_SPACE_MB: semiSpaceMb });
  const sockets: WebSocket[] = [];
  try {
    for (let batch = 0; batch < CONNECTIONS / 250; batch++) {
      const opened = Array.from({ length: 250 }, () => {
        const ws = new WebSocket(node.url);
        sockets.push(ws);
        return new Promise<void>((resolve, reject) => {
          ws.once('open', () => {
            ws.send(JSON.stringify({ id: 1, method: 'connect', params: {} }));
            ws.send(JSON.stringify({ id: 2, method: 'subscribe', params: { channel: 'idle' } }));
            resolve();
          });
          ws.once('error', reject);
        });
      });
      await Promise.all(opened);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const text = await (await fetch(`${node.http}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('tidings_edge_nodejs_heap_space_size_total_bytes{space="new"'));
    assert.ok(line, 'the edge reports its new space');
    return Number(line.split(' ').at(-1));
  } finally {
    for (const ws of sockets) ws.terminate();
    await node.stop();
  }
}

test('edge workers keep a small young generation under a connection storm (worker_semi_space_mb)', { timeout: 60_000 }, async () => {
  const limit = Number(execFileSync('sh', ['-c', 'ulimit -Sn'], { encoding: 'utf8' }).trim());
  assert.ok(!(limit < 2 * CONNECTIONS + 500), `this test needs ${2 * CONNECTIONS + 500} descriptors; ulimit -n is ${limit}`);
  const capped = await newSpaceAfterConnections('2');
  const uncapped = await newSpaceAfterConnections('0');
  assert.ok(capped <= 2 * 2 * MB, `new space with the 2 MB cap: ${capped / MB} MB`);
  assert.ok(uncapped > 2 * capped, `without the cap V8 grows it: ${uncapped / MB} MB against ${capped / MB} MB`);
});
