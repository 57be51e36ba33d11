import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_PAYLOAD_DEPTH, checkJsonTextDepth, checkValueDepth, jsonTextDepth, valueDepth } from '../../src/protocol/payload.js';
import { ErrorCodes, TidingsError } from '../../src/protocol/errors.js';

const nested = (n: number): string => '['.repeat(n) + ']'.repeat(n);

test('jsonTextDepth counts arrays and objects, not brackets inside strings', () => {
  assert.equal(jsonTextDepth('1'), 0);
  assert.equal(jsonTextDepth('"[[[{{{"'), 0);
  assert.equal(jsonTextDepth('{"a":[1,{"b":"]]]\\"[["}]}'), 3);
  assert.equal(jsonTextDepth(nested(MAX_PAYLOAD_DEPTH)), MAX_PAYLOAD_DEPTH);
  assert.equal(jsonTextDepth(nested(10_000)), MAX_PAYLOAD_DEPTH + 1, 'stops counting past the limit');
});

test('valueDepth walks values without recursion', () => {
  assert.equal(valueDepth(null), 0);
  assert.equal(valueDepth({ a: [1, { b: new Uint8Array(3) }] }), 3);
  let deep: unknown = 1;
  for (let i = 0; i < 200_000; i++) deep = [deep];
  assert.equal(valueDepth(deep), MAX_PAYLOAD_DEPTH + 1);
  assert.equal(valueDepth(new Map([['k', [1]]])), 2);
});

test('the checks throw payload_too_deep (126) past the limit and accept the limit itself', () => {
  checkJsonTextDepth(nested(MAX_PAYLOAD_DEPTH));
  checkValueDepth(JSON.parse(nested(MAX_PAYLOAD_DEPTH)));
  for (const f of [() => checkJsonTextDepth(nested(MAX_PAYLOAD_DEPTH + 1)), () => checkValueDepth(JSON.parse(nested(MAX_PAYLOAD_DEPTH + 1)))]) {
    assert.throws(f, (e: unknown) => e instanceof TidingsError && e.spec === ErrorCodes.PAYLOAD_TOO_DEEP);
  }
});
