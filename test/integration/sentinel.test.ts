/**
 * The redis engine behind redis-sentinel: a master, two replicas and a
 * Sentinel (Debian's redis-server and redis-sentinel, started here). With
 * redis_replicas_ack 1 every acknowledged append is on the replica before it
 * is acknowledged, so when the master is killed (kill -9) and Sentinel
 * promotes the replica, the engine (following the master through Sentinel)
 * continues the same stream: every acknowledged offset is there with its
 * message, and no offset is handed out twice.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { startRedis, startSentinel, type RedisServer } from '../helpers/redis.js';
import { RedisEngine, parseRedisUrl } from '../../src/director/engine/redis-engine.js';
import { DirectorLease } from '../../src/director/engine/lease.js';
import { messagePushParts } from '../../src/director/push-encoding.js';
import type { AppendRequest } from '../../src/director/engine/engine.js';

const log = pino({ level: 'silent' });
const servers: RedisServer[] = [];
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  for (const s of servers.reverse()) await s.stop().catch(() => undefined);
});

function req(i: number): AppendRequest {
  const now = Date.now();
  const { head, tail } = messagePushParts('sentinel', null, now, JSON.stringify({ i }));
  return { channel: 'sentinel', head, tail, now, store: true, limits: { maxCount: 10_000, maxAgeMs: 0, maxBytes: 1 << 30 } };
}

test('redis+sentinel URLs are parsed; others are passed through', () => {
  assert.deepEqual(parseRedisUrl('redis+sentinel://:pw@h1:26379,h2:26380/mymaster/2'), { sentinels: [{ host: 'h1', port: 26379 }, { host: 'h2', port: 26380 }], name: 'mymaster', password: 'pw', db: 2 });
  assert.deepEqual(parseRedisUrl('redis+sentinel://s1/m'), { sentinels: [{ host: 's1', port: 26379 }], name: 'm', db: 0 });
  assert.deepEqual(parseRedisUrl('redis://127.0.0.1:6379/1'), { url: 'redis://127.0.0.1:6379/1' });
  assert.throws(() => parseRedisUrl('http://x'), /redis/);
});

test('Sentinel promotes the replica after kill -9 of the master: every acknowledged offset survives, none is reused', async () => {
  const master = await startRedis();
  servers.push(master);
  // Two replicas: after one is promoted, the other replicates from it, so replicas_ack 1 can be met again.
  for (let r = 0; r < 2; r++) servers.push(await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] }));
  const sentinel = await startSentinel(master.port, 'tm');
  servers.push(sentinel);

  const engine = new RedisEngine({ url: `redis+sentinel://127.0.0.1:${sentinel.port}/tm`, prefix: 'st', keepMs: 3_600_000, totalBytes: 1 << 30, replicasAck: 1, replicasTimeoutMs: 1000, log });
  await engine.start();
  const lease = new DirectorLease({ redis: engine.redis, prefix: 'st', node: 'd', leaseMs: 6000, pollMs: 50, log });
  cleanups.push(async () => {
    await lease.stop();
    await engine.stop();
  });
  const lost = { reason: '' };
  lease.on('lost', (r) => (lost.reason = r));
  engine.fence = await new Promise<string>((r) => {
    lease.once('acquired', r);
    lease.start();
  });
  // The replica must be in sync before replicas_ack can be met.
  const syncBy = Date.now() + 10_000;
  for (;;) {
    try {
      await engine.replicated();
      break;
    } catch (err) {
      if (Date.now() > syncBy) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const acked: Array<{ i: number; offset: number }> = [];
  for (let i = 0; i < 50; i++) acked.push({ i, offset: (await engine.append(req(i))).offset });

  // While no replica can take writes (paused), appends are applied on the master but never acknowledged.
  const replicas = servers.slice(1, 3);
  for (const r of replicas) process.kill(r.pid, 'SIGSTOP');
  let unacked: PromiseSettledResult<unknown>[];
  try {
    unacked = await Promise.allSettled([engine.append(req(1000)), engine.append(req(1001))]);
  } finally {
    for (const r of replicas) process.kill(r.pid, 'SIGCONT');
  }
  assert.deepEqual(unacked.map((u) => u.status), ['rejected', 'rejected'], 'not acknowledged without a replica');
  assert.match(String((unacked[0] as PromiseRejectedResult).reason), /replicas acknowledged/);

  await master.kill9();
  const killedAt = Date.now();
  let failed = 0;
  let lastError = '';
  let i = 50;
  while (acked.length < 80 && Date.now() - killedAt < 15_000) {
    try {
      acked.push({ i, offset: (await engine.append(req(i))).offset });
    } catch (err) {
      lastError = (err as Error).message;
      failed++;
      await new Promise((r) => setTimeout(r, 50));
    }
    i++;
  }
  process.stdout.write(`# sentinel: ${acked.length} acknowledged, ${failed} refused during the promotion, writes acknowledged again ${Date.now() - killedAt} ms after the kill at the latest\n`);
  assert.ok(acked.length >= 80, `appends resumed on the promoted replica (${failed} failed, last: ${lastError})\n${sentinel.output()}`);
  assert.equal(lost.reason, '', 'the lease survived the promotion');
  const offsets = acked.map((a) => a.offset);
  assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), 'increasing');
  assert.equal(new Set(offsets).size, offsets.length, 'no offset reused');
  const page = await engine.history('sentinel', { since: 0, limit: 1000, maxBytes: 1 << 30, now: Date.now(), ttlMs: 0 });
  const stored = new Map(page.messages.map((m) => [m.offset, (JSON.parse(m.push.toString()) as { data: { i: number } }).data.i]));
  for (const a of acked) assert.equal(stored.get(a.offset), a.i, `offset ${a.offset} holds message ${a.i} on the new master`);
});
