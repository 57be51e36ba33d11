/**
 * A small reconnect storm on every `npm test` (bench/lib/storm.ts, the
 * scenario `node dist/bench/storm.js` runs with 10 000 clients): 1 000
 * authenticated clients of a node that is killed with SIGKILL reconnect to
 * the other node at once, each subscribing with `recover` from its last
 * message, while 100 live clients there keep receiving 100 msg/s. Asserted:
 * every storm client is back with every message it missed, none twice, no
 * reconnect failed or was refused, and the live clients kept receiving
 * during the storm. How fast is for the bench, never asserted here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runStorm } from '../../bench/lib/storm.js';

test('reconnect storm: 1 000 clients of a killed node all recover on the other, nothing missed or repeated, live clients served throughout', async () => {
  const r = await runStorm({ stormClients: 1000, liveClients: 100, calmMs: 1500, timeoutMs: 60_000 });
  assert.equal(r.pending, 0, `every storm client recovered (${r.pending} not, after ${r.allRecoveredMs.toFixed(0)} ms)`);
  assert.equal(r.failedReconnects, 0, `no reconnect failed (first: ${r.firstError})`);
  assert.equal(r.gaps, 0, 'no client missed a message of its channel');
  assert.equal(r.repeats, 0, 'no client got a message twice');
  assert.equal(r.recoveredFalse, 0, 'every recovery was complete (recovered: true)');
  assert.ok(r.stormDeliveries > 0, 'the live clients received messages during the storm');
  assert.ok(r.recoveredP99Ms > 0 && r.allRecoveredMs >= r.recoveredP99Ms, 'recovery times were measured');
});
