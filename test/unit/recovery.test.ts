/**
 * The paged recovery of an edge (src/edge/recovery.ts) against a connection
 * stand-in: pages are asked for only once the client's buffer has drained,
 * an old-epoch position replays the new epoch from its start, a hole in a
 * recovery announced complete closes with 4006, and held live pushes go last.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recoverInto } from '../../src/edge/recovery.js';
import { HistoryAllowance, HistoryReader, type Page, type PageQuery } from '../../src/edge/history-reader.js';
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
  readonly pageBytes = 1000;

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
