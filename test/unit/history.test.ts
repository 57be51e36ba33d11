/** History bookkeeping: bounds by count, age and bytes, the director-wide budget, paged reads, allowances and fair page reads. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelHistory, ENTRY_OVERHEAD, HistoryBudget, type HistoryLimits } from '../../src/director/history.js';
import { ChannelState } from '../../src/director/channels.js';
import { historyPage } from '../../src/director/history-page.js';
import { HistoryAllowance, HistoryReader, type Page, type PageQuery } from '../../src/edge/history-reader.js';

/** A push of exactly `size` bytes (for offsets below 100 000). */
const push = (offset: number, size = 100): Buffer => {
  const head = `{"offset":${offset},"pad":"`;
  return Buffer.from(`${head}${'x'.repeat(Math.max(0, size - head.length - 2))}"}`);
};
const limits = (l: Partial<HistoryLimits> = {}): HistoryLimits => ({ maxCount: 1000, maxAgeMs: 0, maxBytes: 1 << 30, ...l });

function filled(n: number, l: Partial<HistoryLimits> = {}, budget = new HistoryBudget(1 << 30), size = 100): ChannelHistory {
  const h = new ChannelHistory(limits(l), budget);
  for (let i = 1; i <= n; i++) h.add(i, i * 10, push(i, size));
  return h;
}

const offsets = (h: ChannelHistory, q: Parameters<ChannelHistory['read']>[0]): number[] => h.read(q, 0).entries.map((e) => e.offset);

test('history keeps the newest messages within its count, age and byte bounds', () => {
  assert.deepEqual(offsets(filled(10, { maxCount: 4 }), { limit: 100, maxBytes: 1 << 20 }), [7, 8, 9, 10]);
  // Age: entries older than 25 ms at time 100 (stored at 10, 20, ..., 100) are gone.
  const aged = filled(10, { maxAgeMs: 25 });
  assert.deepEqual(aged.read({ limit: 100, maxBytes: 1 << 20 }, 100).entries.map((e) => e.offset), [8, 9, 10]);
  // Bytes: each entry costs its push plus ENTRY_OVERHEAD.
  const cost = push(1).length + ENTRY_OVERHEAD;
  const small = filled(10, { maxBytes: cost * 3 });
  assert.deepEqual(offsets(small, { limit: 100, maxBytes: 1 << 20 }), [8, 9, 10]);
  assert.equal(small.bytes, cost * 3);
  // A message larger than the channel may hold is not kept at all.
  const h = new ChannelHistory(limits({ maxBytes: 500 }), new HistoryBudget(1 << 30));
  h.add(1, 0, push(1, 1000));
  assert.equal(h.length, 0);
  // Tighter limits apply at once.
  const loose = filled(10);
  loose.setLimits(limits({ maxCount: 2 }), 0);
  assert.deepEqual(offsets(loose, { limit: 100, maxBytes: 1 << 20 }), [9, 10]);
  assert.equal(filled(10, { maxCount: 0 }).length, 0, 'count 0: no history');
});

test('the director-wide budget removes the oldest messages of any channel first, and frees what channels drop', () => {
  const cost = push(1).length + ENTRY_OVERHEAD;
  const budget = new HistoryBudget(cost * 5);
  const a = new ChannelHistory(limits(), budget);
  const b = new ChannelHistory(limits(), budget);
  a.add(1, 0, push(1));
  a.add(2, 1, push(2));
  b.add(1, 2, push(1));
  a.add(3, 3, push(3));
  b.add(2, 4, push(2));
  assert.equal(budget.used, cost * 5);
  b.add(3, 5, push(3)); // over by one: a's offset 1 (the oldest overall) goes
  assert.deepEqual([a.oldestOffset, a.length, b.length], [2, 2, 3]);
  b.add(4, 6, push(4)); // then a's offset 2
  assert.deepEqual([a.oldestOffset, a.length, b.length], [3, 1, 4]);
  assert.equal(budget.used, cost * 5);
  assert.equal(budget.count, 5);
  assert.equal(budget.evicted, 2);
  b.clear();
  assert.equal(budget.used, cost * 1);
  assert.equal(budget.count, 1);
  // A replaced (edited) push is charged its new size.
  const e = a.findNewest(() => true)!;
  a.replace(e, Buffer.from('{"short":1}'));
  assert.equal(budget.used, Buffer.from('{"short":1}').length + ENTRY_OVERHEAD);
  assert.equal(a.bytes, budget.used);
});

test('removed entries do not keep their pushes, and queued references are compacted', () => {
  const budget = new HistoryBudget(1 << 30);
  const h = new ChannelHistory(limits({ maxCount: 10 }), budget);
  for (let i = 1; i <= 5000; i++) h.add(i, i, push(i));
  assert.equal(budget.count, 10);
  assert.ok((budget as unknown as { fifo: unknown[] }).fifo.length < 3000, 'the budget queue does not grow with every message ever stored');
  // Two channels interleaved: a run per message, each trimmed by its channel; compaction drops the spent runs.
  const x = new ChannelHistory(limits({ maxCount: 10 }), budget);
  for (let i = 1; i <= 5000; i++) {
    h.add(5000 + i, i, push(i));
    x.add(i, i, push(i));
  }
  assert.equal(budget.count, 20);
  assert.ok((budget as unknown as { fifo: unknown[] }).fifo.length < 3000, 'spent runs of interleaved channels are compacted away');
});

test('pushes sliced from the shared pool are copied, so one kept message does not keep a whole pool chunk', () => {
  const h = new ChannelHistory(limits(), new HistoryBudget(1 << 30));
  const pooled = Buffer.from('{"a":1}');
  assert.ok(pooled.buffer.byteLength > pooled.length, 'Buffer.from of a short string is a slice of the pool');
  h.add(1, 0, pooled);
  const kept = h.findNewest(() => true)!.push;
  assert.equal(kept.buffer.byteLength, kept.length);
  assert.deepEqual(kept, pooled);
});

/** Bytes of every distinct ArrayBuffer the stored pushes keep alive. */
function retained(h: ChannelHistory): { buffers: number; bytes: number; pushes: number } {
  const seen = new Set<ArrayBufferLike>();
  let bytes = 0;
  let pushes = 0;
  for (const e of h.read({ limit: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER }, 0).entries) {
    pushes += e.push.length;
    if (!seen.has(e.push.buffer)) {
      seen.add(e.push.buffer);
      bytes += e.push.buffer.byteLength;
    }
  }
  return { buffers: seen.size, bytes, pushes };
}

const text = (offset: number, size: number): string => push(offset, size).toString();

test('store: a busy channel writes its pushes into shared slabs once; a quiet one gives each its own buffer', () => {
  const quiet = new ChannelHistory(limits(), new HistoryBudget(1 << 30));
  for (let i = 1; i <= 20; i++) assert.equal(quiet.store(i, i, text(i, 200)).toString(), text(i, 200), 'the bytes returned are the push');
  assert.equal(retained(quiet).buffers, 20, 'a channel holding a few KB: one exact buffer per entry');
  assert.equal(retained(quiet).bytes, retained(quiet).pushes);
  const busy = new ChannelHistory(limits({ maxCount: 100_000 }), new HistoryBudget(1 << 30));
  for (let i = 1; i <= 5000; i++) busy.store(i, i, text(i, 200));
  const r = retained(busy);
  assert.ok(r.buffers < 1000, `5000 entries in ${r.buffers} buffers: slabs hold many each`);
  // Every stored push reads back as stored.
  busy.read({ limit: 5000, maxBytes: Number.MAX_SAFE_INTEGER }, 0).entries.forEach((e) => assert.equal(e.push.toString(), text(e.offset, 200)));
  // Not kept (too large for the channel): a plain buffer, nothing stored.
  const small = new ChannelHistory(limits({ maxBytes: 500 }), new HistoryBudget(1 << 30));
  assert.equal(small.store(1, 0, text(1, 1000)).length, 1000);
  assert.equal(small.length, 0);
});

test('slabs keep alive at most about a fifth more than the channel is charged for, however it is trimmed', () => {
  // Grow to many slabs, then shrink step by step (count bound), and age out: at every step what the pushes keep alive
  // (their slabs and buffers) stays within the charged bytes' bound; shrinking far copies entries out of the slabs.
  for (const size of [150, 600, 1500]) {
    const h = new ChannelHistory(limits({ maxCount: 100_000 }), new HistoryBudget(1 << 30));
    let offset = 0;
    const check = (what: string): void => {
      const r = retained(h);
      assert.ok(r.bytes - r.pushes <= h.bytes / 5, `${what}, ${size}-byte pushes: ${r.bytes - r.pushes} bytes kept beyond ${r.pushes} of pushes, charged ${h.bytes}`);
    };
    for (; offset < 4000; offset++) h.store(offset + 1, offset, text(offset + 1, size));
    check('grown');
    for (const count of [3000, 1500, 700, 300, 120, 50, 20, 5, 1]) {
      h.setLimits(limits({ maxCount: count }), offset);
      check(`trimmed to ${count}`);
      for (let i = 0; i < count; i++, offset++) h.store(offset + 1, offset, text(offset + 1, size));
      check(`refilled to ${count}`);
    }
    // Grown again, then down to one message at once (as an age bound does after a burst).
    h.setLimits(limits({ maxCount: 100_000 }), offset);
    for (let i = 0; i < 4000; i++, offset++) h.store(offset + 1, offset, text(offset + 1, size));
    check('grown again');
    h.setLimits(limits({ maxCount: 1 }), offset);
    check('trimmed to 1 at once');
    assert.equal(retained(h).bytes, size, 'a channel left with one message holds it in a buffer of its own');
  }
});

/**
 * A reference model of history's rules, kept as plain lists: each channel keeps its newest entries within count,
 * bytes and age; the director-wide budget removes the oldest entry stored anywhere while it is over. The columns and
 * runs of history.ts must give the same contents and charges after every step of a random mix of stores (several
 * channels interleaved, long runs of one), bound changes, clears, edits (some of entries removed since they were read)
 * and reads, across ring wrap-arounds and growth.
 */
test('history and its budget match a plain model of the same rules through a random mix of stores, trims, clears and edits', () => {
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  interface Kept { ch: number; offset: number; time: number; size: number }
  const cost = (e: Kept): number => e.size + ENTRY_OVERHEAD;
  for (let trial = 0; trial < 4; trial++) {
    const budgetBytes = (200 + random(400)) * 60;
    const budget = new HistoryBudget(budgetBytes);
    const model: Kept[] = []; // every kept entry, oldest stored first
    const lim: HistoryLimits[] = Array.from({ length: 4 }, () => limits({ maxCount: 1 + random(300), maxAgeMs: random(3) === 0 ? 500 : 0 }));
    const hs = lim.map((l) => new ChannelHistory(l, budget));
    const next = [0, 0, 0, 0];
    const of = (ch: number): Kept[] => model.filter((e) => e.ch === ch);
    const drop = (e: Kept): void => void model.splice(model.indexOf(e), 1);
    const trimModel = (ch: number, now: number): void => {
      for (;;) {
        const mine = of(ch);
        const bytes = mine.reduce((n, e) => n + cost(e), 0);
        const l = lim[ch]!;
        if (mine.length === 0 || !(mine.length > l.maxCount || bytes > l.maxBytes || (l.maxAgeMs > 0 && now - mine[0]!.time > l.maxAgeMs))) return;
        drop(mine[0]!);
      }
    };
    let now = 0;
    let ch = 0;
    for (let step = 0; step < 3000; step++) {
      now += random(3);
      const op = random(100);
      if (op < 88) {
        if (random(4) === 0) ch = random(4); // runs of one channel, and interleaving
        const size = 20 + random(random(10) === 0 ? 2000 : 200);
        const e: Kept = { ch, offset: ++next[ch]!, time: now, size };
        hs[ch]!.store(e.offset, now, `"${'x'.repeat(size - 2)}"`);
        if (lim[ch]!.maxCount > 0 && cost(e) <= lim[ch]!.maxBytes) {
          model.push(e);
          while (model.reduce((n, k) => n + cost(k), 0) > budgetBytes && model.length > 0) drop(model[0]!);
        }
        trimModel(ch, now);
      } else if (op < 93) {
        const c = random(4);
        lim[c] = limits({ maxCount: random(300), maxAgeMs: random(2) === 0 ? 200 : 0, maxBytes: random(3) === 0 ? 3000 : 1 << 30 });
        hs[c]!.setLimits(lim[c]!, now);
        trimModel(c, now);
      } else if (op < 95) {
        const c = random(4);
        hs[c]!.clear();
        for (const e of of(c)) drop(e);
      } else {
        // An edit: read an entry, maybe let it be trimmed away first, then replace it.
        const c = random(4);
        const read = hs[c]!.read({ limit: 1 + random(5), maxBytes: 1 << 20 }, now).entries;
        trimModel(c, now);
        if (read.length === 0) continue;
        const target = read[random(read.length)]!;
        if (random(3) === 0) {
          hs[c]!.setLimits({ ...lim[c]!, maxCount: 0 }, now);
          hs[c]!.setLimits(lim[c]!, now);
          for (const e of of(c)) drop(e);
        }
        const size = 10 + random(100);
        hs[c]!.replace(target, Buffer.from(`"${'y'.repeat(size - 2)}"`));
        const m = model.find((e) => e.ch === c && e.offset === target.offset);
        if (m) m.size = size;
        while (model.reduce((n, k) => n + cost(k), 0) > budgetBytes && model.length > 0) drop(model[0]!);
      }
      for (let c = 0; c < 4; c++) {
        const got = hs[c]!.read({ limit: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER }, now).entries;
        trimModel(c, now);
        const want = of(c);
        assert.deepEqual(got.map((e) => [e.offset, e.push.length]), want.map((e) => [e.offset, e.size]), `trial ${trial} step ${step} channel ${c}`);
        assert.equal(hs[c]!.bytes, want.reduce((n, e) => n + cost(e), 0));
      }
      assert.equal(budget.used, model.reduce((n, e) => n + cost(e), 0), `trial ${trial} step ${step}: budget`);
      assert.equal(budget.count, model.length);
    }
  }
});

test('a channel emptied gives back its columns; one holding many messages keeps them in a few arrays', () => {
  const h = filled(5000, { maxCount: 100_000 });
  const columns = (x: ChannelHistory): number => (x as unknown as { offsets: Float64Array }).offsets.length;
  assert.ok(columns(h) >= 5000);
  assert.deepEqual([h.oldestOffset, h.length], [1, 5000]);
  h.clear();
  assert.equal(h.length, 0);
  assert.ok(columns(h) <= 16, `an emptied channel keeps ${columns(h)} slots`);
  // Wrapped around and grown again: every entry in order.
  const w = filled(0, { maxCount: 10 });
  for (let i = 1; i <= 25; i++) w.add(i, i, push(i));
  w.setLimits(limits({ maxCount: 1000 }), 25);
  for (let i = 26; i <= 100; i++) w.add(i, i, push(i));
  assert.deepEqual(offsets(w, { limit: 1000, maxBytes: 1 << 30 }), Array.from({ length: 85 }, (_, i) => i + 16));
  assert.ok(w.read({ limit: 1000, maxBytes: 1 << 30 }, 100).entries.every((e) => e.push.equals(push(e.offset))));
});

test('the budget queues runs of a channel\'s entries: runs a channel trimmed itself are skipped, runs never mix channels, and an edit of an entry trimmed since it was read changes nothing', () => {
  const cost = push(1).length + ENTRY_OVERHEAD;
  // a's first run (1, 2) is trimmed by a itself (count 2), under the budget; then b's 1, stored after that run, is the
  // oldest entry stored: the budget evicts it, not a's oldest.
  let budget = new HistoryBudget(cost * 4);
  let a = new ChannelHistory(limits({ maxCount: 2 }), budget);
  let b = new ChannelHistory(limits(), budget);
  a.add(1, 0, push(1));
  a.add(2, 1, push(2));
  b.add(1, 2, push(1));
  a.add(3, 3, push(3));
  a.add(4, 4, push(4));
  b.add(2, 5, push(2));
  b.add(3, 6, push(3)); // over the budget
  assert.deepEqual([offsets(a, { limit: 10, maxBytes: 1 << 20 }), offsets(b, { limit: 10, maxBytes: 1 << 20 })], [[3, 4], [2, 3]]);
  // b's 4th entry follows a's 3rd in the queue: its own run, not a's.
  budget = new HistoryBudget(cost * 6);
  a = new ChannelHistory(limits(), budget);
  b = new ChannelHistory(limits(), budget);
  for (let i = 1; i <= 3; i++) b.add(i, i, push(i));
  for (let i = 1; i <= 3; i++) a.add(i, 3 + i, push(i));
  for (let i = 4; i <= 10; i++) b.add(i, 3 + i, push(i));
  assert.deepEqual([a.length, offsets(b, { limit: 10, maxBytes: 1 << 20 })], [0, [5, 6, 7, 8, 9, 10]]);
  assert.deepEqual([budget.used, budget.count], [cost * 6, 6]);
  // An entry read, then trimmed away (newer ones stay): replacing it changes nothing.
  const h = filled(5);
  const third = h.read({ since: 2, limit: 1, maxBytes: 1 << 20 }, 0).entries[0]!;
  h.setLimits(limits({ maxCount: 2 }), 0);
  const before = h.bytes;
  h.replace(third, Buffer.from('{"edited":true}'));
  assert.equal(h.bytes, before);
  assert.deepEqual(h.read({ limit: 10, maxBytes: 1 << 20 }, 0).entries.map((e) => e.push.toString()), [push(4).toString(), push(5).toString()]);
});

test('paged reads: since/until/limit, a byte bound that always lets one message through, more and available', () => {
  const h = filled(20, {}, new HistoryBudget(1 << 30), 100);
  const size = push(1).length;
  let p = h.read({ since: 5, limit: 100, maxBytes: size * 3 }, 0);
  assert.deepEqual(p.entries.map((e) => e.offset), [6, 7, 8]);
  assert.deepEqual([p.more, p.available], [true, 15]);
  p = h.read({ since: 5, until: 12, limit: 100, maxBytes: 1 << 20 }, 0);
  assert.deepEqual(p.entries.map((e) => e.offset), [6, 7, 8, 9, 10, 11, 12]);
  assert.deepEqual([p.more, p.available], [false, 7]);
  p = h.read({ since: 5, limit: 4, maxBytes: 1 << 20 }, 0);
  assert.deepEqual([p.entries.length, p.more, p.available], [4, false, 4], 'stopping at limit is not "more"');
  p = h.read({ since: 5, limit: 100, maxBytes: 1 }, 0);
  assert.deepEqual(p.entries.map((e) => e.offset), [6], 'the first message comes whatever its size');
  // Without since: the newest `limit`, oldest first, paged from the oldest of them.
  p = h.read({ limit: 5, maxBytes: size * 2 }, 0);
  assert.deepEqual([p.entries.map((e) => e.offset), p.more, p.available], [[16, 17], true, 5]);
  p = h.read({ since: 17, limit: 3, maxBytes: 1 << 20 }, 0);
  assert.deepEqual(p.entries.map((e) => e.offset), [18, 19, 20]);
  assert.deepEqual(h.read({ since: 20, limit: 5, maxBytes: 1 }, 0).entries, []);
});

test('historyPage: inline messages or raw frames with offsets; another epoch gets nothing; complete says history reaches back', () => {
  const state = new ChannelState('c', limits({ maxCount: 5 }), new HistoryBudget(1 << 30), 0);
  for (let i = 0; i < 8; i++) {
    const off = state.next(i);
    state.history.add(off, i, Buffer.from(`{"type":"message","offset":${off}}`));
  }
  const base = { channel: 'c', limit: 100, maxBytes: 1 << 20, epoch: state.epoch, now: 0 };
  const inline = JSON.parse(historyPage(state, { ...base, since: 5, raw: false }).body.toString());
  assert.deepEqual(inline, {
    channel: 'c', epoch: state.epoch, offset: 8, complete: true, more: false, available: 3,
    messages: [{ type: 'message', offset: 6 }, { type: 'message', offset: 7 }, { type: 'message', offset: 8 }],
  });
  const raw = historyPage(state, { ...base, since: 1, raw: true });
  const meta = JSON.parse(raw.body.toString());
  assert.deepEqual([meta.offsets, meta.complete], [[4, 5, 6, 7, 8], false], 'offsets 2 and 3 are gone');
  assert.deepEqual(raw.frames.map((f) => JSON.parse(f.toString()).offset), [4, 5, 6, 7, 8]);
  const other = JSON.parse(historyPage(state, { ...base, since: 5, epoch: 'old', raw: false }).body.toString());
  assert.deepEqual([other.messages, other.complete, other.epoch], [[], false, state.epoch]);
});

test('a connection history allowance refills continuously up to its capacity', () => {
  const a = new HistoryAllowance(1000, 10_000, 0);
  assert.equal(a.available(0), 1000);
  a.take(1200, 0);
  assert.equal(a.available(0), -200, 'one page may overdraw it');
  assert.equal(a.available(5000), 300);
  assert.equal(a.waitMs(500, 5000), 2000);
  assert.equal(a.waitMs(5000, 5000), 7000, 'never more than the capacity is waited for');
  assert.equal(a.available(1e9), 1000);
});

test('page reads share the edge bytes in flight, granted to connections in turn', async () => {
  const started: string[] = [];
  const finish: Array<() => void> = [];
  const reader = new HistoryReader(
    (q: PageQuery) =>
      new Promise<Page>((resolve) => {
        started.push(q.channel);
        finish.push(() => resolve({ meta: { channel: q.channel, epoch: 'e', offset: 0, complete: true, more: false, available: 0, offsets: [] }, pushes: [], bytes: 0 }));
      }),
    300,
  );
  const hog = {};
  const calm = {};
  const reads: Promise<Page | null>[] = [];
  for (let i = 0; i < 4; i++) reads.push(reader.page(hog, { channel: `hog${i}`, limit: 1 }, 100, () => true));
  reads.push(reader.page(calm, { channel: 'calm', limit: 1 }, 100, () => true));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, ['hog0', 'hog1', 'hog2'], '300 bytes in flight at most');
  assert.equal(reader.bytesInFlight, 300);
  finish.shift()!();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started.slice(3), ['calm'], 'the waiting connections take turns: calm before the hog\'s fourth read');
  while (finish.length > 0) {
    finish.shift()!();
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(reads);
  assert.deepEqual(started.slice(4), ['hog3']);
  assert.equal(reader.bytesInFlight, 0);
  // A read whose connection closed while it waited asks for nothing.
  assert.equal(await reader.page(calm, { channel: 'gone', limit: 1 }, 100, () => false), null);
  assert.equal(started.includes('gone'), false);
});
