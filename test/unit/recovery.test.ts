/**
 * The paged recovery of an edge (src/edge/recovery.ts) against a connection
 * stand-in: pages are asked for only once the client's buffer has drained,
 * an old-epoch position replays the new epoch from its start, a hole in a
 * recovery announced complete closes with 4006, and held live pushes go last.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recoverInto } from '../../src/edge/recovery.js';
import { FIRST_READ_BYTES, HISTORY_PAGE_BYTES, HistoryAllowance, HistoryReader, IN_FLIGHT_BYTES, type Page, type PageQuery } from '../../src/edge/history-reader.js';
import type { ClientConnection } from '../../src/edge/connection.js';

/** A channel history of offsets 1..n (minus `missing`) in epoch 'e2', served `perPage` at a time. */
function director(n: number, perPage: number, missing: number[] = []) {
  const asked: PageQuery[] = [];
  const fetch = async (q: PageQuery): Promise<Page> => {
    asked.push(q);
    const all = Array.from({ length: n }, (_, i) => i + 1).filter((o) => !missing.includes(o) && o > (q.since ?? 0) && o <= (q.until ?? n));
    const offsets = all.slice(0, perPage);
    return {
      meta: { channel: 'c', epoch: 'e2', offset: n, complete: (q.since ?? 0) + 1 >= 1 && !missing.some((m) => m > (q.since ?? 0)), more: all.length > perPage, available: all.length, offsets },
      pushes: offsets.map((o) => Buffer.from(`{"offset":${o}}`)),
      bytes: offsets.length * 10,
    };
  };
  return { asked, reader: new HistoryReader(fetch) };
}

/** What recovery uses of a ClientConnection, recording what it writes. */
class FakeConnection {
  written: number[] = [];
  released: number[] = [];
  gaps: string[] = [];
  pending = 0;
  private recovering = new Map<string, object>();
  private lane: Promise<unknown> = Promise.resolve();
  private drained: Array<() => void> = [];
  readonly allowance = new HistoryAllowance(1 << 30, 1000, Date.now());
  constructor(readonly pageBytes = 1000) {}

  beginRecovery(channel: string): object {
    const t = {};
    this.recovering.set(channel, t);
    return t;
  }
  recoveryWanted(channel: string, token: object): boolean {
    return this.recovering.get(channel) === token;
  }
  endRecovery(channel: string, token: object): void {
    if (this.recovering.get(channel) === token) this.recovering.delete(channel);
  }
  isClosed(): boolean {
    return false;
  }
  whenBelow(bytes: number): Promise<boolean> {
    if (this.pending <= bytes) return Promise.resolve(true);
    return new Promise((resolve) => this.drained.push(() => resolve(true)));
  }
  /** The client read what was sent. */
  drain(): void {
    this.pending = 0;
    for (const d of this.drained.splice(0)) d();
  }
  inHistoryLane<T>(read: () => Promise<T>): Promise<T> {
    const run = this.lane.then(read, read);
    this.lane = run.catch(() => undefined);
    return run;
  }
  replay(pushes: readonly Buffer[]): void {
    for (const p of pushes) this.written.push(JSON.parse(p.toString()).offset);
    this.pending += 5000; // each page fills the buffer past the mark until the client reads
  }
  release(_channel: string, after: number): void {
    this.released.push(after);
  }
  onGap(channel: string, kind: string): void {
    this.gaps.push(`${channel}:${kind}`);
  }
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

test('recovery pages are asked for only once the client has read the previous one', async () => {
  const d = director(10, 3);
  const conn = new FakeConnection();
  const c = conn as unknown as ClientConnection;
  const out = await recoverInto({ history: d.reader, timeoutMs: 5000 }, c, 'c', { offset: 10, epoch: 'e2' }, { offset: 2, epoch: 'e2' });
  assert.deepEqual(out.result, { channel: 'c', offset: 10, epoch: 'e2', recovered: true, replayed: 8 });
  assert.equal(d.asked.length, 1, 'the first page is read before the reply');
  out.afterReply();
  await tick();
  assert.deepEqual(conn.written, [3, 4, 5]);
  assert.equal(d.asked.length, 1, 'no second page while the client has not read the first');
  conn.drain();
  await tick();
  assert.deepEqual(conn.written, [3, 4, 5, 6, 7, 8]);
  assert.equal(d.asked.length, 2);
  conn.drain();
  await tick();
  assert.deepEqual(conn.written, [3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(conn.released, [10], 'held live pushes after offset 10 go last');
  assert.deepEqual(conn.gaps, []);
});

test('a position of an older epoch replays the new epoch from its start, recovered: false', async () => {
  const d = director(4, 10);
  const conn = new FakeConnection();
  const out = await recoverInto({ history: d.reader, timeoutMs: 5000 }, conn as unknown as ClientConnection, 'c', { offset: 4, epoch: 'e2' }, { offset: 57, epoch: 'e1' });
  assert.deepEqual(out.result, { channel: 'c', offset: 4, epoch: 'e2', recovered: false, replayed: 4 });
  assert.deepEqual(d.asked[0], { channel: 'c', since: 0, until: 4, epoch: 'e2', limit: 4 });
  out.afterReply();
  await tick();
  assert.deepEqual(conn.written, [1, 2, 3, 4]);
  assert.deepEqual(conn.released, [4]);
});

test('a recovery announced complete that meets a hole between pages closes with 4006', async () => {
  // Offsets 1..9 with 6 gone by the time the second page is read.
  let calls = 0;
  const reader = new HistoryReader(async (q: PageQuery): Promise<Page> => {
    calls++;
    const since = q.since ?? 0;
    const offsets = calls === 1 ? [3, 4, 5] : [7, 8, 9].filter((o) => o > since);
    return { meta: { channel: 'c', epoch: 'e2', offset: 9, complete: true, more: calls === 1, available: calls === 1 ? 7 : 3, offsets }, pushes: offsets.map((o) => Buffer.from(`{"offset":${o}}`)), bytes: 30 };
  });
  const conn = new FakeConnection();
  const out = await recoverInto({ history: reader, timeoutMs: 5000 }, conn as unknown as ClientConnection, 'c', { offset: 9, epoch: 'e2' }, { offset: 2, epoch: 'e2' });
  assert.equal((out.result as { recovered: boolean }).recovered, true);
  out.afterReply();
  await tick();
  conn.drain();
  await tick();
  assert.deepEqual(conn.written, [3, 4, 5]);
  assert.deepEqual(conn.gaps, ['c:hole']);
  assert.deepEqual(conn.released, [], 'nothing goes live after a broken replay');
});

test("a storm's recoveries share the edge's bound on history reads at once: small first pages, full pages after", async () => {
  // Every read waits until the test lets it answer, as a director a round trip away would.
  const asked: number[] = [];
  const answers: Array<() => void> = [];
  const reader = new HistoryReader(
    (q: PageQuery, maxBytes: number) =>
      new Promise<Page>((resolve) => {
        asked.push(maxBytes);
        const since = q.since ?? 0;
        // 3 messages per page, offsets up to 9.
        const offsets = [since + 1, since + 2, since + 3].filter((o) => o <= 9);
        answers.push(() => resolve({ meta: { channel: 'c', epoch: 'e2', offset: 9, complete: true, more: offsets[offsets.length - 1]! < 9, available: 9 - since, offsets }, pushes: offsets.map((o) => Buffer.from(`{"offset":${o}}`)), bytes: 30 }));
      }),
    IN_FLIGHT_BYTES,
  );
  const clients = 40;
  const conns = Array.from({ length: clients }, () => new FakeConnection(HISTORY_PAGE_BYTES));
  const outs = conns.map((conn) => recoverInto({ history: reader, timeoutMs: 5000 }, conn as unknown as ClientConnection, 'c', { offset: 9, epoch: 'e2' }, { offset: 0, epoch: 'e2' }));
  await tick();
  // With full 1 MB first pages the edge's 4 MB bound let 4 run; 40 x 64 KB fit together.
  assert.equal(asked.length, clients, `first pages in flight at once: ${asked.length}`);
  assert.ok(asked.every((b) => b <= FIRST_READ_BYTES), `first pages ask for at most ${FIRST_READ_BYTES} bytes: ${asked[0]}`);
  for (const a of answers.splice(0)) a();
  const results = await Promise.all(outs);
  for (const r of results) r.afterReply();
  conns.forEach((c) => c.drain());
  await tick();
  assert.ok(asked.length > clients, 'the rest of each recovery was asked for');
  assert.ok(asked.slice(clients).every((b) => b === HISTORY_PAGE_BYTES), `later pages are full pages: ${asked.slice(clients, clients + 3).join(', ')}`);
  // Finish every recovery: all offsets 1..9 reach every client, in order.
  // Later pages are full 1 MB ones again: 4 at a time, so 40 clients x 2 more pages take 20 rounds.
  for (let round = 0; round < 40 && answers.length > 0; round++) {
    for (const a of answers.splice(0)) a();
    await tick();
    conns.forEach((c) => c.drain());
    await tick();
  }
  for (const c of conns) assert.deepEqual(c.written, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
});
