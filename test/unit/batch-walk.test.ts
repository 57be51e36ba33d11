import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchRanges, checkMessageBatch, eachRangeInMessageBatch, encodeMessageBatch, walkMessageBatch } from '../../src/cluster/batch.js';
import { PushRun } from '../../src/edge/frames.js';

/** A deterministic generator, so a failure names a reproducible case. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function body(r: () => number, n: number, first: number, step = () => 1): Buffer {
  const offsets: number[] = [];
  const pushes: Buffer[] = [];
  let o = first;
  for (let i = 0; i < n; i++) {
    offsets.push(o);
    o += step();
    pushes.push(Buffer.from(`{"n":${i},"pad":"${'x'.repeat(Math.floor(r() * 300))}"}`));
  }
  return encodeMessageBatch(offsets, pushes);
}

test('walkMessageBatch counts the entries of a well-formed batch (0 when malformed), as checkMessageBatch does, and records every entry where eachRangeInMessageBatch finds it', () => {
  const r = rng(17);
  const ranges = new BatchRanges(64);
  for (let k = 0; k < 300; k++) {
    const n = 1 + Math.floor(r() * 80);
    const gappy = r() < 0.3;
    let b = body(r, n, Math.floor(r() * 1000), gappy ? () => (r() < 0.1 ? 2 : 1) : () => 1);
    // Where each whole entry ends: a body cut there is a shorter well-formed batch.
    const ends: number[] = [];
    eachRangeInMessageBatch(b, (_offset, _start, end) => ends.push(end));
    // Corruptions the check must refuse: a cut body, a length past the end, an offset that is not a safe integer or negative.
    let expected = n;
    const cut = r();
    if (cut < 0.15) {
      b = b.subarray(0, Math.floor(r() * b.length));
      expected = ends.indexOf(b.length) + 1; // 0 when the cut is inside an entry (or the body is empty)
    } else if (cut < 0.25) {
      b.writeUInt32BE(b.length, 8);
      expected = 0;
    } else if (cut < 0.3) {
      b.writeDoubleBE([-1, 0.5, NaN, 2 ** 60][Math.floor(r() * 4)]!, 0);
      expected = 0;
    }
    const count = walkMessageBatch(b, ranges);
    assert.equal(count, expected, `case ${k}: the entries of a well-formed batch, 0 when malformed`);
    assert.equal(checkMessageBatch(b), expected, `case ${k}: checkMessageBatch counts the same`);
    if (count === 0) continue;
    const seen: Array<[number, number, number]> = [];
    eachRangeInMessageBatch(b, (offset, start, end) => seen.push([offset, start, end]));
    assert.equal(ranges.filled, count <= 64 ? count : 0, `case ${k}: recorded when within capacity`);
    if (ranges.filled === 0) continue;
    for (let i = 0; i < count; i++) assert.deepEqual([ranges.offsets[i], ranges.starts[i], ranges.ends[i]], seen[i], `case ${k} entry ${i}`);
    const consecutive = seen.every(([o], i) => i === 0 || o === seen[i - 1]![0] + 1);
    assert.equal(ranges.consecutive, consecutive, `case ${k}: consecutive`);
  }
});

test('PushRun.of makes the run PushRun#add would: offsets, pushes, bytes and frame', () => {
  const r = rng(5);
  const b = body(r, 40, 100);
  const ranges = new BatchRanges(64);
  assert.equal(walkMessageBatch(b, ranges), 40);
  const added = new PushRun(b, 'c');
  eachRangeInMessageBatch(b, (offset, start, end) => {
    if (offset >= 105 && offset < 130) added.add(offset, start, end);
  });
  const of = PushRun.of(b, 'c', ranges, 5, 30);
  assert.equal(of.count, 25);
  assert.deepEqual([...Array.from(of.offsets)], [...Array.from(added.offsets)]);
  assert.equal(of.jsonFrameBytes, added.jsonFrameBytes);
  assert.equal(of.lineBytes, added.lineBytes);
  assert.deepEqual(of.forJson(), added.forJson());
  for (let i = 0; i < of.count; i++) assert.deepEqual(of.push(i).json, added.push(i).json);
});
