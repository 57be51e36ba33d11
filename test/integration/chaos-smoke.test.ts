/**
 * A short run of the chaos suite (`npm run chaos` runs it in full): two
 * scenarios on a cluster of real processes (director + 2 forwarder nodes x 2
 * edge workers) with SDK subscribers on every node and a steady acknowledged
 * publisher. Whatever the fault, every acknowledged message reaches every
 * subscriber once and in order.
 *
 * History is set to 1000 messages so it covers an SDK reconnect at this rate
 * (the figures of the default settings are in docs/reliability.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScenario, type RunOptions, type ScenarioResult } from '../../chaos/lib/harness.js';
import { markdownTable } from '../../chaos/lib/report.js';
import { edgeKill } from '../../chaos/scenarios/edge-kill.js';
import { directorPause } from '../../chaos/scenarios/director-pause.js';

const options: RunOptions = {
  rate: 200,
  warmupSeconds: 1,
  afterSeconds: 1.5,
  drainQuietSeconds: 3,
  subscribersPerNode: 2,
  ackTimeout: 10,
  nodes: 2,
  workers: 2,
  settings: { history_size: '1000' },
  params: { pauseSeconds: 2, restartDelaySeconds: 0 },
  sdk: { initialRetryDelay: 0.2, maxRetryDelay: 1 },
  logDir: null,
  progress: (line) => process.stdout.write(`# ${line}\n`),
};

function assertNothingLost(r: ScenarioResult): void {
  const f = r.figures;
  process.stdout.write(markdownTable([r]).replace(/^/gm, '# '));
  assert.ok(f.published >= options.rate * (options.warmupSeconds + options.afterSeconds) * 0.8, `published ${f.published}`);
  assert.ok(f.acknowledged > 0 && f.acknowledged <= f.published);
  assert.equal(f.missing, 0, 'every acknowledged message reached every subscriber');
  assert.equal(f.duplicated, 0, 'no subscriber got a message twice');
  assert.equal(f.reordered, 0, 'every subscriber got the messages in order');
  assert.ok(f.delivered >= f.acknowledged * f.subscribers);
  assert.notEqual(f.recoveryMs, null, 'every subscriber received messages again after the fault');
}

test('chaos smoke: kill -9 of an edge worker loses nothing, repeats nothing, reorders nothing', async () => {
  const r = await runScenario(edgeKill, options);
  assertNothingLost(r);
  assert.ok(r.figures.affected > 0, 'the killed worker held subscribers');
  assert.equal(r.figures.acknowledged, r.figures.published, 'the director answered every publish');
});

test('chaos smoke: SIGSTOP of the director for 2 s loses nothing; delivery resumes when it continues', async () => {
  const r = await runScenario(directorPause, options);
  assertNothingLost(r);
  assert.equal(r.figures.affected, 0, 'subscribers stay connected while the director is paused');
  assert.ok(r.figures.recoveryMs! >= 1900, `nothing new is delivered while the director is stopped (recovery ${r.figures.recoveryMs} ms)`);
});
