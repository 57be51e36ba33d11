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
import { ENTRY_OVERHEAD, HistoryBudget } from '../../src/director/history.js';
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

const LIMITS: HistoryLimits = { maxCount: 100, maxAgeMs: 0, maxBytes: 1 << 30 };
/** A page byte bound that never binds. */
const ANY = 1 << 30;
/** What one message costs in the byte bounds of either engine. */
const cost = (push: Buffer): number => push.length + ENTRY_OVERHEAD;

function req(channel: string, i: number, now: number, limits: HistoryLimits = LIMITS, store = true): AppendRequest {
  const { head, tail } = messagePushParts(channel, 'alice', now, JSON.stringify({ i }));
  return { channel, head, tail, now, store, limits };
}

async function redisEngine(totalBytes = 1 << 30, keepMs = 3_600_000): Promise<RedisEngine> {
  const prefix = `suite${++prefixes}`;
  const engine = new RedisEngine({ url: redis.url, prefix, keepMs, totalBytes, log });
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

const engines: Array<{ name: string; make: (totalBytes?: number) => Promise<StateEngine> }> = [
  { name: 'memory', make: async (totalBytes = 1 << 30) => new MemoryEngine(new ChannelRegistry(LIMITS, new HistoryBudget(totalBytes))) },
  { name: 'redis', make: (totalBytes) => redisEngine(totalBytes) },
];

const data = (push: Buffer): number => (JSON.parse(push.toString()) as { data: { i: number } }).data.i;

for (const { name, make } of engines) {
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
      const page = await e.history('seq', { limit: 10, maxBytes: ANY, now, ttlMs: 0 });
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
      const none = await e.history('never', { limit: 10, maxBytes: ANY, now, ttlMs: 0 });
      assert.deepEqual({ ...none, messages: none.messages.length }, { offset: 0, epoch: '', oldest: 1, more: false, available: 0, messages: 0 });
      const p = await e.position('fresh', now);
      assert.equal(p.offset, 0);
      assert.ok(p.epoch.length > 0);
      const q = await e.position('fresh', now);
      assert.deepEqual(q, p, 'stable');
      const other = await e.position('fresh2', now);
      assert.notEqual(other.epoch, p.epoch, 'each channel its own epoch');
    });

    test('history: newest, since a position, until, in pages by count and bytes (more, available)', async () => {
      const now = Date.now();
      for (let i = 0; i < 30; i++) await e.append(req('pages', i, now));
      const newest = await e.history('pages', { limit: 5, maxBytes: ANY, now, ttlMs: 0 });
      assert.deepEqual(newest.messages.map((m) => m.offset), [26, 27, 28, 29, 30]);
      assert.deepEqual([newest.oldest, newest.offset, newest.more, newest.available], [1, 30, false, 5]);
      const p1 = await e.history('pages', { since: 10, limit: 8, maxBytes: ANY, now, ttlMs: 0 });
      assert.deepEqual(p1.messages.map((m) => m.offset), [11, 12, 13, 14, 15, 16, 17, 18]);
      assert.equal(p1.more, false, 'stopping at the limit is not "more"');
      const until = await e.history('pages', { since: 10, until: 13, limit: 8, maxBytes: ANY, now, ttlMs: 0 });
      assert.deepEqual([until.messages.map((m) => m.offset), until.available], [[11, 12, 13], 3]);
      const last = await e.history('pages', { since: 25, limit: 8, maxBytes: ANY, now, ttlMs: 0 });
      assert.deepEqual(last.messages.map((m) => m.offset), [26, 27, 28, 29, 30]);
      const size = last.messages[0]!.push.length;
      const byBytes = await e.history('pages', { since: 0, limit: 100, maxBytes: size * 3 + 1, now, ttlMs: 0 });
      assert.deepEqual(byBytes.messages.map((m) => m.offset), [1, 2, 3], 'a page holds what fits in maxBytes');
      assert.deepEqual([byBytes.more, byBytes.available], [true, 30]);
      const tiny = await e.history('pages', { since: 3, limit: 100, maxBytes: 1, now, ttlMs: 0 });
      assert.deepEqual(tiny.messages.map((m) => m.offset), [4], 'at least one message per page');
      // Without since: the newest `limit`, paged from the oldest of them.
      const newestBytes = await e.history('pages', { limit: 5, maxBytes: size * 2 + 1, now, ttlMs: 0 });
      assert.deepEqual([newestBytes.messages.map((m) => m.offset), newestBytes.more, newestBytes.available], [[26, 27], true, 5]);
    });

    test('history is bounded by count and by time; no_history messages take an offset only', async () => {
      const t0 = Date.now();
      const small = { ...LIMITS, maxCount: 5 };
      for (let i = 0; i < 12; i++) await e.append(req('count', i, t0, small));
      let h = await e.history('count', { since: 0, limit: 100, maxBytes: ANY, now: t0, ttlMs: 0 });
      assert.deepEqual(h.messages.map((m) => m.offset), [8, 9, 10, 11, 12]);
      assert.equal(h.oldest, 8);
      const timed = { ...LIMITS, maxAgeMs: 1000 };
      await e.append(req('timed', 0, t0, timed));
      await e.append(req('timed', 1, t0 + 600, timed));
      await e.append(req('timed', 2, t0 + 1200, timed, false));
      h = await e.history('timed', { since: 0, limit: 100, maxBytes: ANY, now: t0 + 1500, ttlMs: 1000 });
      assert.deepEqual(h.messages.map((m) => data(m.push)), [1], 'the first expired, the third was never stored');
      assert.equal(h.offset, 3);
      assert.equal(h.oldest, 2);
      h = await e.history('timed', { since: 0, limit: 100, maxBytes: ANY, now: t0 + 5000, ttlMs: 1000 });
      assert.deepEqual(h.messages, []);
      assert.equal(h.oldest, 4, 'empty history: offset + 1');
    });

    test('history is bounded by bytes per channel (push + ENTRY_OVERHEAD each); a message larger than the bound is not kept', async () => {
      const now = Date.now();
      const one = (await e.append(req('bytes', 0, now))).offset;
      const first = await e.history('bytes', { limit: 1, maxBytes: ANY, now, ttlMs: 0 });
      const c = cost(first.messages[0]!.push);
      const bounded = { ...LIMITS, maxBytes: c * 4 + 2 }; // offset 10 is one byte longer
      for (let i = 1; i < 10; i++) await e.append(req('bytes', i, now, bounded));
      const h = await e.history('bytes', { since: 0, limit: 100, maxBytes: ANY, now, ttlMs: 0 });
      assert.equal(one, 1);
      assert.deepEqual(h.messages.map((m) => m.offset), [7, 8, 9, 10]);
      assert.ok(h.messages.reduce((n, m) => n + cost(m.push), 0) <= c * 4 + 2);
      const tight = { ...LIMITS, maxBytes: c - 1 };
      const big = await e.append(req('bytes-big', 0, now, tight));
      assert.equal(big.offset, 1, 'sequenced');
      assert.deepEqual((await e.history('bytes-big', { since: 0, limit: 10, maxBytes: ANY, now, ttlMs: 0 })).messages, [], 'but not kept');
    });

    test('history is bounded by bytes over every channel: the oldest message goes first, whatever its channel', async () => {
      const now = Date.now();
      const probe = await make();
      await probe.append(req('tot-a', 0, now));
      const c = cost((await probe.history('tot-a', { limit: 1, maxBytes: ANY, now, ttlMs: 0 })).messages[0]!.push);
      const t = await make(c * 10);
      for (let i = 0; i < 6; i++) await t.append(req('tot-a', i, now));
      for (let i = 0; i < 6; i++) await t.append(req('tot-b', i, now));
      const offsets = async (ch: string): Promise<number[]> => (await t.history(ch, { since: 0, limit: 100, maxBytes: ANY, now, ttlMs: 0 })).messages.map((m) => m.offset);
      assert.deepEqual(await offsets('tot-a'), [3, 4, 5, 6], "a's two oldest made room");
      assert.deepEqual(await offsets('tot-b'), [1, 2, 3, 4, 5, 6]);
      await t.append(req('tot-b', 6, now));
      assert.deepEqual(await offsets('tot-a'), [4, 5, 6]);
      assert.equal((await t.history('tot-a', { since: 2, limit: 100, maxBytes: ANY, now, ttlMs: 0 })).oldest, 4);
      // An edit that grows a message is charged too.
      assert.equal(await t.rewrite('tot-b', 7, Buffer.alloc(c * 2, 0x20)), true);
      assert.deepEqual(await offsets('tot-a'), [6], 'the growth of offset 7 pushed out the two oldest');
      assert.deepEqual(await offsets('tot-b'), [1, 2, 3, 4, 5, 6, 7]);
    });

    test('rewrite replaces a stored push (edit, delete tombstone)', async () => {
      const now = Date.now();
      const p = await e.append(req('edit', 0, now));
      assert.equal(await e.rewrite('edit', p.offset, Buffer.from('{"edited":true}')), true);
      assert.equal(await e.rewrite('edit', 999, Buffer.from('{}')), false);
      assert.equal(await e.rewrite('nowhere', 1, Buffer.from('{}')), false);
      const h = await e.history('edit', { limit: 10, maxBytes: ANY, now, ttlMs: 0 });
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

describe('redis engine: the total bound after channel keys expired', () => {
  test("an idle channel's expired keys stay counted until they reach the head, then free their bytes", async () => {
    const now = Date.now();
    const e = await redisEngine(1 << 30, 3_600_000);
    await e.append(req('prob', 0, now)); // a name as long as the two below: the same cost per message
    const c = cost((await e.history('prob', { limit: 1, maxBytes: ANY, now, ttlMs: 0 })).messages[0]!.push);
    const t = await redisEngine(c * 6, 150);
    for (let i = 0; i < 4; i++) await t.append(req('gone', i, now));
    assert.equal((await t.totals()).bytes, 4 * c);
    await new Promise((r) => setTimeout(r, 300)); // 'gone' idle past keepMs: Redis expired its keys
    assert.equal(await t.redis.exists('suite' + prefixes + ':c:gone'), 0);
    for (let i = 0; i < 4; i++) await t.append(req('kept', i, now));
    let totals = await t.totals();
    assert.deepEqual([totals.bytes, totals.messages], [6 * c, 6], "two of the expired channel's four gave way; the other two are still counted");
    for (let i = 4; i < 6; i++) await t.append(req('kept', i, now));
    totals = await t.totals();
    assert.deepEqual([totals.bytes, totals.messages], [6 * c, 6], 'the last two expired ones freed their bytes for these');
    assert.deepEqual((await t.history('kept', { since: 0, limit: 10, maxBytes: ANY, now, ttlMs: 0 })).messages.map((m) => m.offset), [1, 2, 3, 4, 5, 6]);
    assert.equal(totals.evicted, 0, 'no stored message was evicted: only accounting of expired ones');
  });
});

describe('redis lease and fencing', () => {
  test('one holder at a time; a holder paused past its lease cannot sequence, store or overwrite', async () => {
    const prefix = `lease${++prefixes}`;
    const a = new RedisEngine({ url: redis.url, prefix, keepMs: 3_600_000, totalBytes: 1 << 30, log });
    const b = new RedisEngine({ url: redis.url, prefix, keepMs: 3_600_000, totalBytes: 1 << 30, log });
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
    const h = await b.history('fenced', { since: 0, limit: 100, maxBytes: ANY, now, ttlMs: 0 });
    assert.deepEqual(h.messages.map((m) => m.offset), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(h.messages.map((m) => data(m.push)), [0, 1, 2, 3, 4, 5]);
    assert.equal((await b.load('conn')).size, 0, "the fenced save wrote nothing");
    const raw = new Redis(redis.url);
    cleanups.push(() => void raw.disconnect());
    assert.equal(await raw.get(`${prefix}:lease`), lb.value);
  });

  test('a graceful stop releases the lease so a standby takes over at once', async () => {
    const prefix = `lease${++prefixes}`;
    const a = new RedisEngine({ url: redis.url, prefix, keepMs: 3_600_000, totalBytes: 1 << 30, log });
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

/**
 * A connection that drops with commands in flight and reconnects at its first
 * try (Redis restarted quickly, a proxy or `CLIENT KILL` closing it): every
 * command in flight must fail (157), never hang, and the connection must
 * serve the next ones. CLIENT PAUSE WRITE holds the scripts in Redis, so
 * they are surely in flight when the connection is killed.
 */
describe('redis engine: a connection dropped with commands in flight', () => {
  /** Hold every write for heldMs (`during` runs once the pause is in effect), then drop `victim`'s connection. */
  async function dropConnectionWhilePaused(admin: Redis, victim: Redis, heldMs: number, during: () => void = () => undefined): Promise<void> {
    const id = await victim.call('CLIENT', 'ID');
    await admin.call('CLIENT', 'PAUSE', heldMs + 2000, 'WRITE');
    during();
    await new Promise((r) => setTimeout(r, heldMs));
    assert.equal(await admin.call('CLIENT', 'KILL', 'ID', String(id)), 1);
    await admin.call('CLIENT', 'UNPAUSE');
  }
  /** The promise's outcome, or 'pending' after ms. */
  function settled<T>(p: Promise<T>, ms: number): Promise<{ ok: T } | { err: unknown } | 'pending'> {
    let t: NodeJS.Timeout | undefined;
    return Promise.race([
      p.then((ok) => ({ ok }), (err: unknown) => ({ err })),
      new Promise<'pending'>((r) => (t = setTimeout(() => r('pending'), ms))),
    ]).finally(() => clearTimeout(t));
  }

  /** A connection stuck with a command that never settles would hold a lease's release (stop) forever. */
  const boundedStop = (lease: DirectorLease, engine: RedisEngine, admin: Redis) => async (): Promise<void> => {
    admin.disconnect();
    await settled(lease.stop(), 1000);
    await engine.stop();
  };

  test('appends in flight fail with 157 and the next append is sequenced after the last acknowledged one', async () => {
    const prefix = `dropped${++prefixes}`;
    const e = new RedisEngine({ url: redis.url, prefix, keepMs: 3_600_000, totalBytes: 1 << 30, log });
    await e.start();
    const lease = new DirectorLease({ redis: e.redis, prefix, node: 'a', leaseMs: 60_000, pollMs: 50, log });
    const admin = new Redis(redis.url);
    cleanups.push(boundedStop(lease, e, admin));
    e.fence = await new Promise<string>((r) => {
      lease.once('acquired', r);
      lease.start();
    });
    const now = Date.now();
    const acked = await e.append(req('dropped', 0, now));
    let inFlight: Array<ReturnType<typeof settled<unknown>>> = [];
    // Sent once writes are paused: Redis holds them, so they are in flight (never applied) when the connection drops.
    await dropConnectionWhilePaused(admin, e.redis, 100, () => (inFlight = [1, 2, 3].map((i) => settled(e.append(req('dropped', i, now)), 3000))));
    for (const [i, p] of inFlight.entries()) {
      const r = await p;
      assert.ok(r !== 'pending', `append ${i + 1}, in flight when the connection dropped, never settled`);
      assert.ok('err' in r && r.err instanceof TidingsError, `append ${i + 1} failed: ${JSON.stringify(r)}`);
      assert.equal(r.err.code, ErrorCodes.STATE_UNAVAILABLE.code);
    }
    const next = await settled(e.append(req('dropped', 4, now)), 3000);
    assert.ok(next !== 'pending' && 'ok' in next, `the next append after the reconnect: ${JSON.stringify(next)}`);
    assert.ok(next.ok.offset > acked.offset && next.ok.epoch === acked.epoch, `offset ${next.ok.offset} after ${acked.offset}, same epoch`);
  });

  test('a lease renewal in flight fails and the next one renews: the holder keeps its lease', async () => {
    const prefix = `lease${++prefixes}`;
    const leaseMs = 3000;
    const a = new RedisEngine({ url: redis.url, prefix, keepMs: 3_600_000, totalBytes: 1 << 30, log });
    await a.start();
    const la = new DirectorLease({ redis: a.redis, prefix, node: 'a', leaseMs, pollMs: 50, log });
    const admin = new Redis(redis.url);
    cleanups.push(boundedStop(la, a, admin));
    let lost: string | null = null;
    la.once('lost', (reason) => (lost = reason));
    await new Promise<string>((r) => {
      la.once('acquired', r);
      la.start();
    });
    const key = `${prefix}:lease`;
    /** Resolves just after the next renewal (the key's ttl jumps back up), or with false after ms. */
    const renewal = async (ms: number): Promise<boolean> => {
      const until = Date.now() + ms;
      let last = await admin.pttl(key);
      while (Date.now() < until) {
        await new Promise((r) => setTimeout(r, 10));
        const t = await admin.pttl(key);
        if (t > last) return true;
        last = t;
      }
      return false;
    };
    assert.ok(await renewal(leaseMs), 'renewed every lease/3');
    // Just renewed: hold writes past the next renewal (lease/3 later), so it is in flight when the connection drops.
    await dropConnectionWhilePaused(admin, a.redis, leaseMs / 3 + 150);
    assert.ok(await renewal(leaseMs), 'renewed again after the reconnect, before the lease ran out');
    assert.equal(lost, null, 'the lease was not lost');
    assert.equal(la.held, true);
  });

  test('a holder whose renewal gets no answer (Redis paused) steps down at its own deadline, not when the answer comes', async () => {
    const prefix = `lease${++prefixes}`;
    const leaseMs = 1200;
    const pauseMs = 5000;
    const a = new RedisEngine({ url: redis.url, prefix, keepMs: 3_600_000, totalBytes: 1 << 30, log });
    await a.start();
    const la = new DirectorLease({ redis: a.redis, prefix, node: 'a', leaseMs, pollMs: 50, log });
    const admin = new Redis(redis.url);
    cleanups.push(boundedStop(la, a, admin));
    await new Promise<string>((r) => {
      la.once('acquired', r);
      la.start();
    });
    const lost = new Promise<{ reason: string; at: number }>((r) => la.once('lost', (reason) => r({ reason, at: Date.now() })));
    // Renewals are scripts that write: paused by Redis, neither answered nor failed, the connection kept open.
    const pausedAt = Date.now();
    await admin.call('CLIENT', 'PAUSE', pauseMs, 'WRITE');
    try {
      const got = await settled(lost, pauseMs - 500);
      assert.ok(got !== 'pending' && 'ok' in got, 'the holder stepped down while Redis still held its renewal');
      assert.equal(got.ok.reason, 'lease expired while Redis did not answer');
      assert.ok(got.ok.at - pausedAt <= leaseMs + 500, `stepped down ${got.ok.at - pausedAt} ms after the pause (lease ${leaseMs} ms)`);
      assert.equal(la.held, false);
    } finally {
      await admin.call('CLIENT', 'UNPAUSE');
    }
  });
});
