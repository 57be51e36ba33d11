/**
 * A `history` command's page read in steps (readInSteps, src/edge/history-reader.ts)
 * against the director's own history and page encoding: the same page as one
 * read of the whole size, small reads first so many run at once, and a stop
 * where the channel changed between two steps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HistoryBudget, type HistoryLimits } from '../../src/director/history.js';
import { ChannelState } from '../../src/director/channels.js';
import { historyPage } from '../../src/director/history-page.js';
import { FIRST_READ_BYTES, HISTORY_PAGE_BYTES, HistoryReader, IN_FLIGHT_BYTES, pageOfReply, readInSteps, type Page, type PageMeta, type PageQuery } from '../../src/edge/history-reader.js';

const limits: HistoryLimits = { maxCount: 100_000, maxAgeMs: 0, maxBytes: 1 << 30 };

/** A channel whose message i (from 1) has the i-th size (cycled), at least 20 bytes. */
function channel(count: number, sizes: number[]): ChannelState {
  const state = new ChannelState('c', limits, new HistoryBudget(1 << 30), 0);
  for (let i = 0; i < count; i++) {
    const off = state.next(0);
    const head = `{"offset":${off},"p":"`;
    state.history.add(off, 0, Buffer.from(`${head}${'x'.repeat(Math.max(0, sizes[i % sizes.length]! - head.length - 2))}"}`));
  }
  return state;
}

/** The director's raw reply to a history read, as the edge's command client makes it a Page. */
function read(state: ChannelState, q: PageQuery, maxBytes: number): Page {
  const reply = historyPage(state, { channel: q.channel, since: q.since, until: q.until, limit: q.limit, maxBytes, epoch: q.epoch ?? null, raw: true, packed: true, now: 0 });
  return pageOfReply(JSON.parse(reply.body.toString()) as PageMeta, [...reply.frames]);
}

const owner = {};
const alive = (): boolean => true;

test('a page read in steps is the page one read of the whole size gives', async () => {
  // Sizes that cross the first step's bound in every way: small, mid-size, one larger than the first step,
  // one larger than what is left of the page (it must wait for the next page, as a single read leaves it).
  const cases: Array<{ sizes: number[]; count: number; q: Omit<PageQuery, 'channel'>; max: number }> = [
    { sizes: [100], count: 5000, q: { limit: 5000 }, max: HISTORY_PAGE_BYTES },
    { sizes: [100], count: 5000, q: { since: 10, limit: 3000 }, max: HISTORY_PAGE_BYTES },
    { sizes: [900, 40_000, 70_000, 3000], count: 200, q: { since: 0, limit: 200 }, max: 300_000 },
    { sizes: [100_000], count: 20, q: { limit: 20 }, max: HISTORY_PAGE_BYTES },
    { sizes: [60_000, 700_000], count: 10, q: { since: 0, limit: 10 }, max: HISTORY_PAGE_BYTES },
    { sizes: [30_000, 50_000], count: 10, q: { since: 2, until: 9, limit: 10 }, max: 200_000 },
    { sizes: [100], count: 50, q: { since: 0, limit: 20 }, max: HISTORY_PAGE_BYTES },
    { sizes: [100], count: 50, q: { since: 0, limit: 20 }, max: 1000 },
  ];
  for (const [i, c] of cases.entries()) {
    const state = channel(c.count, c.sizes);
    const q: PageQuery = { channel: 'c', ...c.q };
    const single = read(state, q, c.max);
    let steps = 0;
    const reader = new HistoryReader(async (query, maxBytes) => {
      steps++;
      return read(state, query, maxBytes);
    });
    const stepped = (await readInSteps(reader, owner, q, c.max, alive))!;
    assert.deepEqual(stepped.meta, single.meta, `case ${i}: the same head and offsets`);
    assert.deepEqual(stepped.pushes, single.pushes, `case ${i}: the same messages`);
    assert.equal(stepped.bytes, single.bytes, `case ${i}`);
    if (single.bytes > FIRST_READ_BYTES) assert.ok(steps > 1, `case ${i}: read in ${steps} steps`);
  }
});

test('history commands of many connections are read at once: each first step asks for at most FIRST_READ_BYTES', async () => {
  const state = channel(50, [200]);
  const asked: number[] = [];
  const answer: Array<() => void> = [];
  const reader = new HistoryReader(
    (q, maxBytes) =>
      new Promise<Page>((resolve) => {
        asked.push(maxBytes);
        answer.push(() => resolve(read(state, q, maxBytes)));
      }),
  );
  const n = 40;
  const pages = Array.from({ length: n }, () => readInSteps(reader, {}, { channel: 'c', limit: 50 }, HISTORY_PAGE_BYTES, alive));
  await new Promise((r) => setTimeout(r, 10));
  // With one read of the whole page (1 MB) each, the edge's 4 MB bound let 4 go to the director at a time.
  assert.equal(asked.length, n, `history reads in flight at once: ${asked.length} (bound ${IN_FLIGHT_BYTES} B)`);
  assert.ok(asked.every((b) => b <= FIRST_READ_BYTES));
  for (const a of answer) a();
  for (const p of await Promise.all(pages)) assert.deepEqual(p!.meta.offsets, Array.from({ length: 50 }, (_, i) => i + 1));
});

test('a step that does not go on from the last offset, or finds another epoch, ends the page there with more: true', async () => {
  for (const change of ['expired', 'epoch'] as const) {
    let state = channel(100, [2000]);
    let calls = 0;
    const reader = new HistoryReader(async (q, maxBytes) => {
      if (++calls === 2) {
        if (change === 'expired') for (let i = 0; i < 40; i++) state.history.dropOldest();
        // The director restarted: the channel's state is new, in a new epoch, with the same offsets.
        else state = channel(100, [2000]);
      }
      return read(state, q, maxBytes);
    });
    const page = (await readInSteps(reader, owner, { channel: 'c', since: 0, limit: 100 }, HISTORY_PAGE_BYTES, alive))!;
    const first = Math.floor(FIRST_READ_BYTES / 2000);
    assert.deepEqual(page.meta.offsets, Array.from({ length: first }, (_, i) => i + 1), `${change}: the first step only`);
    assert.equal(page.pushes.length, first);
    assert.equal(page.meta.more, true, `${change}: more says to ask on from offset ${first}`);
  }
});

test('messages published between steps are left for the next page, as one read at the first step leaves them', async () => {
  const state = channel(50, [2000]);
  let calls = 0;
  const reader = new HistoryReader(async (q, maxBytes) => {
    if (++calls === 2) for (let i = 0; i < 5; i++) state.history.add(state.next(0), 0, Buffer.from(`{"offset":${state.offset}}`));
    return read(state, q, maxBytes);
  });
  // The newest 100 (fewer are there): the page ends at offset 50, where the channel stood at the first step.
  const page = (await readInSteps(reader, owner, { channel: 'c', limit: 100 }, HISTORY_PAGE_BYTES, alive))!;
  assert.ok(calls >= 2);
  assert.deepEqual(page.meta.offsets, Array.from({ length: 50 }, (_, i) => i + 1));
  assert.equal(page.meta.offset, 50);
});

test('a packed page: the pushes are views of its one frame, as a frame per push gives them; one that does not add up is refused', () => {
  const state = channel(30, [120, 3000, 17]);
  const q = { channel: 'c', since: 3, limit: 20, maxBytes: 1 << 20, epoch: null, raw: true, now: 0 };
  const perFrame = historyPage(state, q);
  const packed = historyPage(state, { ...q, packed: true });
  assert.equal(packed.frames.length, 1);
  const a = pageOfReply(JSON.parse(perFrame.body.toString()) as PageMeta, [...perFrame.frames]);
  const b = pageOfReply(JSON.parse(packed.body.toString()) as PageMeta, [...packed.frames]);
  assert.deepEqual(b, a);
  assert.equal(b.pushes.length, 20);
  const empty = historyPage(state, { ...q, since: 30, packed: true });
  assert.deepEqual(pageOfReply(JSON.parse(empty.body.toString()) as PageMeta, [...empty.frames]).pushes, []);
  const meta = JSON.parse(packed.body.toString()) as PageMeta & { lengths: number[] };
  const frame = packed.frames[0]!;
  const bad: Array<[string, unknown, Buffer[]]> = [
    ['one length short', meta.lengths.slice(1), [frame]],
    ['a byte missing', meta.lengths, [frame.subarray(1)]],
    ['a byte over', meta.lengths, [Buffer.concat([frame, Buffer.from(' ')])]],
    ['a length not a number', meta.lengths.map((n, i) => (i === 4 ? String(n) : n)), [frame]],
    ['two frames', meta.lengths, [frame, frame]],
  ];
  for (const [what, lengths, frames] of bad) {
    assert.throws(() => pageOfReply({ ...meta, lengths }, frames), (err: Error & { code?: number }) => err.code === 100 && /does not add up/.test(err.message), what);
  }
});
