import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EndOfTurn } from '../../src/runtime/end-of-turn.js';

test('EndOfTurn: asked many times in a turn, flushes once after it; asked again later, flushes again', async () => {
  let flushes = 0;
  const turn = new EndOfTurn(() => flushes++);
  for (let i = 0; i < 5; i++) turn.request();
  assert.equal(flushes, 0, 'not during the turn');
  await new Promise((r) => setImmediate(r));
  assert.equal(flushes, 1, 'once at its end');
  turn.request();
  await new Promise((r) => setImmediate(r));
  assert.equal(flushes, 2, 'a later turn flushes again');
});
