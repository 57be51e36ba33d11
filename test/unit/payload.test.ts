import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_PAYLOAD_DEPTH, NOT_JSON, checkJsonTextDepth, checkValueDepth, jsonTextDepth, scanJsonText, valueDepth } from '../../src/protocol/payload.js';
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

test('scanJsonText accepts exactly what JSON.parse accepts, with the depth jsonTextDepth counts', () => {
  // Valid texts, then mutated ones (a character removed, inserted or replaced), from a fixed seed; and edge cases.
  let seed = 12345;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const gen = (d: number): unknown => {
    const r = rnd();
    if (d > 5 || r < 0.3) return pick([0, -1, 1.5, -0.25e-7, 1e21, 'a', 'hé\n"\\/\t\u0001', '', true, false, null, 123456789]);
    if (r < 0.65) return Array.from({ length: Math.floor(rnd() * 4) }, () => gen(d + 1));
    const o: Record<string, unknown> = {};
    for (let k = Math.floor(rnd() * 4); k > 0; k--) o[pick(['a', 'b"c', 'd\\e', '', 'é'])] = gen(d + 1);
    return o;
  };
  const chars = ['{', '}', '[', ']', ',', ':', '"', '\\', ' ', '\n', '0', '1', '-', '+', '.', 'e', 'E', 't', 'r', 'u', 'f', 'n', 'l', 'a', 's', 'x', '\u0001', '\t', '/'];
  const texts = ['', ' ', '01', '-', '-0', '1.', '.5', '1e', '1e+', '1E5', '1e-5', '-0.0e0', '"\\x"', '"\\u12G4"', '"\\u12a4"', 'tru', 'nulll', 'true ', '[1,]', '[,1]', '{"a":1,}', '{"a" : 1 , "b":[ ] }', '{,}', '{"a"}', '{"a":}', '[]]', '[[]', '"\u2028"', '\uFEFF1', '1 2', '[1 2]', '{"a":1 "b":2}', '"abc', '"\\"', '[\t\r\n]', 'Infinity', 'NaN', '+1', '0x10', '[-]', '""', '{}', '[{}]', '"\u0000"'];
  for (let k = 0; k < 20_000; k++) {
    let t = JSON.stringify(gen(0), null, rnd() < 0.3 ? 1 : undefined);
    for (let m = Math.floor(rnd() * 3); m > 0; m--) {
      const at = Math.floor(rnd() * (t.length + 1));
      const op = rnd();
      t = op < 0.33 ? t.slice(0, at) + t.slice(at + 1) : op < 0.66 ? t.slice(0, at) + pick(chars) + t.slice(at) : t.slice(0, at) + pick(chars) + t.slice(at + 1);
    }
    texts.push(t);
  }
  let valid = 0;
  for (const t of texts) {
    let parses = true;
    try {
      JSON.parse(t);
    } catch {
      parses = false;
    }
    const r = scanJsonText(t, 100);
    assert.equal(r !== NOT_JSON, parses, `scanJsonText(${JSON.stringify(t)}) = ${r}, JSON.parse ${parses ? 'accepts' : 'refuses'} it`);
    if (parses) {
      valid++;
      assert.equal(r, jsonTextDepth(t, 100), JSON.stringify(t));
    }
  }
  assert.ok(valid > 5000 && valid < texts.length - 5000, `both kinds tried: ${valid} valid of ${texts.length}`);
  // Past the limit it stops: limit + 1, however the rest looks.
  assert.equal(scanJsonText('['.repeat(40) + 'garbage', 32), 33);
  assert.equal(scanJsonText('['.repeat(32) + ']'.repeat(32), 32), 32);
});
