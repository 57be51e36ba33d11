/** The chaos suite's figures, from hand-made publisher and subscriber records. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyse } from '../../chaos/lib/analysis.js';
import type { PublishRecord } from '../../chaos/lib/publisher.js';
import type { SubscriberRecord, Delivery } from '../../chaos/lib/subscribers.js';

const FAULT = 1000;

/** Publishes seq 0..n-1 sent at 100 ms steps from t=0, acknowledged 5 ms later in epoch e1 unless listed as failed. */
function publishes(n: number, failed: number[] = [], epochOf: (seq: number) => string = () => 'e1'): PublishRecord[] {
  return Array.from({ length: n }, (_, seq) => {
    const sentAt = seq * 100;
    if (failed.includes(seq)) return { seq, sentAt, error: 'timed out' };
    return { seq, sentAt, ackedAt: sentAt + 5, offset: seq + 1, epoch: epochOf(seq) };
  });
}

function sub(id: string, seqs: Array<number | [number, number]>, epochOf: (seq: number) => string = () => 'e1', extra: Partial<SubscriberRecord> = {}): SubscriberRecord {
  const deliveries: Delivery[] = seqs.map((x) => {
    const [seq, at] = Array.isArray(x) ? x : [x, x * 100 + 10];
    return { seq, offset: seq + 1, epoch: epochOf(seq), at };
  });
  return { id, node: 'node1', edge: 'node1/e0', deliveries, disconnects: [], subscribes: [], ...extra };
}

test('a clean run: everything acknowledged is delivered once, in order; recovery is the first message after the fault', () => {
  const f = analyse(publishes(20), [sub('a', [...Array(20).keys()]), sub('b', [...Array(20).keys()])], FAULT);
  assert.equal(f.published, 20);
  assert.equal(f.acknowledged, 20);
  assert.equal(f.delivered, 40);
  assert.deepEqual([f.missing, f.duplicated, f.reordered, f.unrecovered, f.affected], [0, 0, 0, 0, 0]);
  // seq 10 is the first sent at or after t=1000, delivered at 1010.
  assert.equal(f.recoveryMs, 10);
  assert.equal(f.publishRecoveryMs, 5);
});

test('missing counts acknowledged messages a subscriber never got; failed publishes are not missing', () => {
  const got = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11];
  const f = analyse(publishes(12, [6]), [sub('a', got), sub('b', [...Array(12).keys()].filter((s) => s !== 6))], FAULT);
  assert.equal(f.acknowledged, 11);
  assert.equal(f.missing, 1, 'seq 7 is missing for a; seq 6 was never acknowledged');
  assert.equal(f.subscribersMissing, 1);
});

test('an unacknowledged publish that reached subscribers is counted as such, not as missing', () => {
  const f = analyse(publishes(12, [6]), [sub('a', [...Array(12).keys()])], FAULT);
  assert.equal(f.unacknowledgedDelivered, 1);
  assert.equal(f.delivered, 12);
  assert.equal(f.missing, 0);
});

test('duplicates and reorders are counted per subscriber; a duplicate is not also a reorder', () => {
  const f = analyse(publishes(12), [sub('a', [0, 1, 2, 3, 3, 4, 6, 5, 7, 8, 9, 10, 11])], FAULT);
  assert.equal(f.duplicated, 1);
  assert.equal(f.reordered, 1, '5 after 6');
  assert.equal(f.missing, 0);
});

test('a later epoch comes after an earlier one whatever the offsets; going back to the old epoch is a reorder', () => {
  // After a director restart at seq 10 the new epoch starts again at offset 1.
  const epochOf = (seq: number): string => (seq < 10 ? 'old' : 'new');
  const pubs = publishes(14, [], epochOf).map((p) => (p.seq >= 10 ? { ...p, offset: p.seq - 9 } : p));
  const deliveries = (order: number[]): SubscriberRecord => {
    const s = sub('a', order, epochOf);
    for (const d of s.deliveries) if (d.seq >= 10) d.offset = d.seq - 9;
    return s;
  };
  assert.equal(analyse(pubs, [deliveries([...Array(14).keys()])], FAULT).reordered, 0);
  const back = deliveries([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 9, 12, 13]);
  back.deliveries[11]!.at = 1500; // the old-epoch message arrives after new-epoch ones
  assert.equal(analyse(pubs, [back], FAULT).reordered, 1);
});

test('recovery is the slowest subscriber; one that never gets a new message makes it null', () => {
  const slow = sub('slow', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, [10, 3200], [11, 3201]], () => 'e1', {
    disconnects: [{ at: 1001, code: 1006, reason: 'abnormal_closure' }],
    subscribes: [{ at: 3100, resubscribed: true, recovered: true, replayed: 2 }],
  });
  const f = analyse(publishes(12), [sub('fast', [...Array(12).keys()]), slow], FAULT);
  assert.equal(f.recoveryMs, 2200);
  assert.equal(f.affected, 1);
  assert.equal(f.unrecovered, 0);
  const stuck = sub('stuck', [...Array(10).keys()], () => 'e1', { subscribes: [{ at: 1200, resubscribed: true, recovered: false, replayed: 0 }] });
  const g = analyse(publishes(12), [sub('fast', [...Array(12).keys()]), stuck], FAULT);
  assert.equal(g.recoveryMs, null);
  assert.equal(g.unrecovered, 1);
  assert.equal(g.missing, 2);
});

test('publish recovery waits for the first publish sent after the fault to be acknowledged', () => {
  // Publishes sent from t=1000 on are all answered from t=2000 on (the director was paused).
  const pubs = publishes(20).map((p) => (p.sentAt >= FAULT ? { ...p, ackedAt: 2000 + p.seq - 10 } : p));
  const f = analyse(pubs, [sub('a', [...Array(20).keys()])], FAULT);
  assert.equal(f.publishRecoveryMs, 1000);
});
