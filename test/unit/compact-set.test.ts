/** CompactSet (presence's small sets) against a Set: the same answers, the same order, for any sequence of changes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompactSet } from '../../src/runtime/compact-set.js';

test('CompactSet answers as a Set through one, two and many elements, and back', () => {
  const s = new CompactSet<string>();
  assert.equal(s.size, 0);
  assert.equal(s.has('a'), false);
  assert.equal(s.delete('a'), false);
  assert.deepEqual([...s], []);
  s.add('a').add('a');
  assert.equal(s.size, 1);
  assert.equal(s.has('a'), true);
  assert.equal(s.has('b'), false);
  assert.equal(s.delete('b'), false);
  s.add('b').add('c');
  assert.deepEqual([...s], ['a', 'b', 'c']);
  assert.equal(s.delete('a'), true);
  assert.equal(s.delete('c'), true);
  assert.deepEqual([...s], ['b']);
  assert.equal(s.size, 1);
  assert.equal(s.has('a'), false);
  s.add('d');
  assert.deepEqual([...s], ['b', 'd'], 'insertion order kept after going back to one element');
  assert.deepEqual([...new CompactSet(['x', 'y', 'x'])], ['x', 'y']);
  s.clear();
  assert.equal(s.size, 0);
  assert.equal(s.has('b'), false);
  assert.deepEqual([...s.add('e')], ['e']);
});

test('CompactSet and Set agree over 20 000 random changes', () => {
  let seed = 42;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const model = new Set<string>();
  const s = new CompactSet<string>();
  for (let i = 0; i < 20_000; i++) {
    const v = `v${rand(4)}`;
    const op = rand(3);
    if (op === 0) {
      model.add(v);
      s.add(v);
    } else if (op === 1) {
      assert.equal(s.delete(v), model.delete(v));
    } else {
      assert.equal(s.has(v), model.has(v));
    }
    assert.equal(s.size, model.size);
    assert.deepEqual([...s], [...model]);
  }
});
