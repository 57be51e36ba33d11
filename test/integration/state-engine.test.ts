/**
 * The state-engine suite: the same tests against every engine (memory, and
 * redis on a real redis-server started here), then the redis lease and its
 * fencing: a director that lost its lease cannot sequence, store or overwrite.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { ChannelRegistry } from '../../src/director/channels.js';
import { MemoryEngine } from '../../src/director/engine/memory-engine.js';
import { RedisEngine } from '../../src/director/engine/redis-engine.js';
import { DirectorLease } from '../../src/director/engine/lease.js';
import { assemblePush, messagePushParts } from '../../src/director/push-encoding.js';
import type { AppendRequest, HistoryLimits, StateEngine } from '../../src/director/engine/engine.js';
import { ErrorCodes, TidingsError } from '../../src/protocol/errors.js';

const log = pino({ level: 'silent' });
let redis: RedisServer;
const cleanups: Array<() => Promise<void> | void> = [];
let prefixes = 0;

before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await redis?.stop();
});

const LIMITS: HistoryLimits = { size: 100, ttlMs: 0, maxBytes: 0 };

function req(channel: string, i: number, now: number, limits: HistoryLimits = LIMITS, store = true): AppendRequest {
  const { head, tail } = messagePushParts(channel, 'alice', now, JSON.stringify({ i }));
  return { channel, head, tail, now, store, limits };
}

async function redisEngine(): Promise<RedisEngine> {
  const prefix = `suite${++prefixes}`;
  const engine = new RedisEngine({ url: redis.url, prefix, keepMs: 3_600_000, log });
  await engine.start();
  const lease = new DirectorLease({ redis: engine.redis, prefix, node: 'suite', leaseMs: 60_000, pollMs: 50, log });
  const won = new Promise<string>((r) => lease.once('acquired', r));
  lease.start();
  engine.fence = await won;
  cleanups.push(async () => {
    await lease.stop();
    await engine.stop();
  });
  return engine;
}

const engines: Array<{ name: string; make: () => Promise<StateEngine>; boundsBytes: boolean }> = [
  // The memory engine bounds history by bytes once issue9b's byte-bounded history is on main.
  { name: 'memory', make: async () => new MemoryEngine(new ChannelRegistry({ historySize: 100, historyTtlMs: 0 })), boundsBytes: false },
  { name: 'redis', make: redisEngine, boundsBytes: true },
];

const data = (push: Buffer): number => (JSON.parse(push.toString()) as { data: { i: number } }).data.i;

for (const { name, make, boundsBytes } of engines) {
  describe(`${name} engine`, () => {
    let e: StateEngine;
    before(async () => {
      e = await make();
    });

    test('append gives consecutive offsets in one epoch and stores the exact push', async () => {
      const now = Date.now();
      const a = await e.append(req('seq', 0, now));
      const b = await e.append(req('seq', 1, now));
      assert.equal(a.offset, 1);
      assert.equal(b.offset, 2);
      assert.equal(a.epoch, b.epoch);
      assert.match(a.epoch, /^[A-Za-z0-9_-]{6,}$/);
      assert.deepEqual(await e.position('seq', now), { offset: 2, epoch: a.epoch });
      const page = await e.history('seq', { limit: 10, maxBytes: 0, now, ttlMs: 0 });
      const { head, tail } = messagePushParts('seq', 'alice', now, JSON.stringify({ i: 1 }));
      assert.equal(page.messages[1]!.push.toString(), assemblePush(head, 2, a.epoch, tail));
      assert.deepEqual(JSON.parse(page.messages[1]!.push.toString()), { type: 'message', channel: 'seq', offset: 2, epoch: a.epoch, sender: 'alice', time: now, data: { i: 1 } });
    });

    test('calls are applied and answered in issue order', async () => {
      const now = Date.now();
      const answered: number[] = [];
      const all = Array.from({ length: 300 }, (_, i) => Promise.resolve(e.append(req('order', i, now))).then((p) => answered.push(p.offset)));
      await Promise.all(all);
      assert.deepEqual(answered, Array.from({ length: 300 }, (_, i) => i + 1));
    });

    test('a new channel gets an epoch on first position; unknown channels read as empty', async () => {
      const now = Date.now();
      const none = await e.history('never', { limit: 10, maxBytes: 0, now, ttlMs: 0 });
      assert.deepEqual({ ...none, messages: none.messages.length }, { offset: 0, epoch: '', oldest: 1, more: false, messages: 0 });
      const p = await e.position('fresh', now);
      assert.equal(p.offset, 0);
      assert.ok(p.epoch.length > 0);
      const q = await e.position('fresh', now);
      assert.deepEqual(q, p, 'stable');
      const other = await e.position('fresh2', now);
      assert.notEqual(other.epoch, p.epoch, 'each channel its own epoch');
    });

    test('history: newest, since a position in pages (count and bytes), oldest and more', async () => {
      const now = Date.now();
      for (let i = 0; i < 30; i++) await e.append(req('pages', i, now));
      const newest = await e.history('pages', { limit: 5, maxBytes: 0, now, ttlMs: 0 });
      assert.deepEqual(newest.messages.map((m) => m.offset), [26, 27, 28, 29, 30]);
      assert.equal(newest.oldest, 1);
      assert.equal(newest.offset, 30);
      const p1 = await e.history('pages', { since: 10, limit: 8, maxBytes: 0, now, ttlMs: 0 });
      assert.deepEqual(p1.messages.map((m) => m.offset), [11, 12, 13, 14, 15, 16, 17, 18]);
      assert.equal(p1.more, true);
      const last = await e.history('pages', { since: 25, limit: 8, maxBytes: 0, now, ttlMs: 0 });
      assert.deepEqual(last.messages.map((m) => m.offset), [26, 27, 28, 29, 30]);
      assert.equal(last.more, false);
      const size = last.messages[0]!.push.length;
      const byBytes = await e.history('pages', { since: 0, limit: 100, maxBytes: size * 3 + 1, now, ttlMs: 0 });
      assert.deepEqual(byBytes.messages.map((m) => m.offset), [1, 2, 3], 'a page holds what fits in maxBytes');
      assert.equal(byBytes.more, true);
      const tiny = await e.history('pages', { since: 3, limit: 100, maxBytes: 1, now, ttlMs: 0 });
      assert.deepEqual(tiny.messages.map((m) => m.offset), [4], 'at least one message per page');
      const newestBytes = await e.history('pages', { limit: 100, maxBytes: size * 2 + 1, now, ttlMs: 0 });
      assert.deepEqual(newestBytes.messages.map((m) => m.offset), [29, 30]);
    });

    test('history is bounded by count and by time; no_history messages take an offset only', async () => {
      const t0 = Date.now();
      const small = { size: 5, ttlMs: 0, maxBytes: 0 };
      for (let i = 0; i < 12; i++) await e.append(req('count', i, t0, small));
      let h = await e.history('count', { since: 0, limit: 100, maxBytes: 0, now: t0, ttlMs: 0 });
      assert.deepEqual(h.messages.map((m) => m.offset), [8, 9, 10, 11, 12]);
      assert.equal(h.oldest, 8);
      const timed = { size: 100, ttlMs: 1000, maxBytes: 0 };
      await e.append(req('timed', 0, t0, timed));
      await e.append(req('timed', 1, t0 + 600, timed));
      await e.append(req('timed', 2, t0 + 1200, timed, false));
      h = await e.history('timed', { since: 0, limit: 100, maxBytes: 0, now: t0 + 1500, ttlMs: 1000 });
      assert.deepEqual(h.messages.map((m) => data(m.push)), [1], 'the first expired, the third was never stored');
      assert.equal(h.offset, 3);
      assert.equal(h.oldest, 2);
      h = await e.history('timed', { since: 0, limit: 100, maxBytes: 0, now: t0 + 5000, ttlMs: 1000 });
      assert.deepEqual(h.messages, []);
      assert.equal(h.oldest, 4, 'empty history: offset + 1');
    });

    test('history is bounded by bytes', { skip: boundsBytes ? false : 'memory engine: byte bound arrives with issue9b' }, async () => {
      const now = Date.now();
      const one = (await e.append(req('bytes', 0, now))).offset;
      const first = await e.history('bytes', { limit: 1, maxBytes: 0, now, ttlMs: 0 });
      const size = first.messages[0]!.push.length;
      const bounded = { size: 1000, ttlMs: 0, maxBytes: size * 4 + 2 }; // offset 10 is one byte longer
      for (let i = 1; i < 10; i++) await e.append(req('bytes', i, now, bounded));
      const h = await e.history('bytes', { since: 0, limit: 100, maxBytes: 0, now, ttlMs: 0 });
      assert.equal(one, 1);
      assert.deepEqual(h.messages.map((m) => m.offset), [7, 8, 9, 10]);
      assert.ok(h.messages.reduce((n, m) => n + m.push.length, 0) <= size * 4 + 2);
    });

    test('rewrite replaces a stored push (edit, delete tombstone)', async () => {
      const now = Date.now();
      const p = await e.append(req('edit', 0, now));
      assert.equal(await e.rewrite('edit', p.offset, Buffer.from('{"edited":true}')), true);
      assert.equal(await e.rewrite('edit', 999, Buffer.from('{}')), false);
      assert.equal(await e.rewrite('nowhere', 1, Buffer.from('{}')), false);
      const h = await e.history('edit', { limit: 10, maxBytes: 0, now, ttlMs: 0 });
      assert.deepEqual(h.messages.map((m) => m.push.toString()), ['{"edited":true}']);
    });

    test('records: saved, read back, deleted', async () => {
      await e.save('user', new Map<string, unknown>([['ann', { state: { a: 1 } }], ['bob', { state: {} }]]));
      await e.save('user', new Map<string, unknown>([['bob', null]]));
      assert.deepEqual([...(await e.load('user'))], [['ann', { state: { a: 1 } }]]);
      assert.deepEqual([...(await e.load('conn'))], []);
    });
  });
}

describe('redis lease and fencing', () => {
  test('one holder at a time; a holder paused past its lease cannot sequence, store or overwrite', async () => {
    const prefix = `lease${++prefixes}`;
    const a = new RedisEngine({ url: redis.url, prefix, keepMs: 3_600_000, log });
    const b = new RedisEngine({ url: redis.url, prefix, keepMs: 3_600_000, log });
    await a.start();
    await b.start();
    const la = new DirectorLease({ redis: a.redis, prefix, node: 'a', leaseMs: 400, pollMs: 50, log });
    const lb = new DirectorLease({ redis: b.redis, prefix, node: 'b', leaseMs: 400, pollMs: 50, log });
    cleanups.push(async () => {
      await la.stop();
      await lb.stop();
      await a.stop();
      await b.stop();
    });
    const lost = new Promise<string>((r) => la.once('lost', r));
    a.fence = await new Promise<string>((r) => {
      la.once('acquired', r);
      la.start();
    });
    const bWon = new Promise<string>((r) => lb.once('acquired', r));
    lb.start();
    const now = Date.now();
    for (let i = 0; i < 5; i++) await a.append(req('fenced', i, now));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(lb.value, null, 'the standby does not get a held lease');
    assert.equal(la.token > 0, true);

    // Pause this process past the lease (as SIGSTOP would): nothing renews it.
    const end = Date.now() + 700;
    while (Date.now() < end) {
      /* paused */
    }
    // The old holder's very next writes, before it noticed anything, are refused by Redis.
    const stale = await Promise.allSettled([a.append(req('fenced', 99, now)), a.rewrite('fenced', 1, Buffer.from('{}')), a.save('conn', new Map([['x', { y: 1 }]])), a.position('other', now)]);
    for (const r of stale) {
      assert.equal(r.status, 'rejected');
      assert.ok((r as PromiseRejectedResult).reason instanceof TidingsError);
      assert.equal(((r as PromiseRejectedResult).reason as TidingsError).code, ErrorCodes.FENCED.code);
    }
    b.fence = await bWon;
    assert.ok(lb.token > la.token || la.value === null, 'the new holder has a higher fencing token');
    assert.match(await lost, /expired|taken over/);
    assert.equal(la.held, false);
    // The new holder continues the same stream: no offset twice, none skipped.
    const next = await b.append(req('fenced', 5, now));
    assert.equal(next.offset, 6);
    const h = await b.history('fenced', { since: 0, limit: 100, maxBytes: 0, now, ttlMs: 0 });
    assert.deepEqual(h.messages.map((m) => m.offset), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(h.messages.map((m) => data(m.push)), [0, 1, 2, 3, 4, 5]);
    assert.equal((await b.load('conn')).size, 0, "the fenced save wrote nothing");
    const raw = new Redis(redis.url);
    cleanups.push(() => void raw.disconnect());
    assert.equal(await raw.get(`${prefix}:lease`), lb.value);
  });

  test('a graceful stop releases the lease so a standby takes over at once', async () => {
    const prefix = `lease${++prefixes}`;
    const a = new RedisEngine({ url: redis.url, prefix, keepMs: 3_600_000, log });
    await a.start();
    cleanups.push(() => a.stop());
    const la = new DirectorLease({ redis: a.redis, prefix, node: 'a', leaseMs: 30_000, pollMs: 50, log });
    const lb = new DirectorLease({ redis: a.redis, prefix, node: 'b', leaseMs: 30_000, pollMs: 50, log });
    cleanups.push(() => lb.stop());
    await new Promise<string>((r) => {
      la.once('acquired', r);
      la.start();
    });
    const bWon = new Promise<string>((r) => lb.once('acquired', r));
    lb.start();
    const t = Date.now();
    await la.stop();
    await bWon;
    assert.ok(Date.now() - t < 1000, `standby took over ${Date.now() - t} ms after the release, not after the 30 s lease`);
  });
});
