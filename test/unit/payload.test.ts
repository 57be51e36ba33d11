import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { MAX_PAYLOAD_DEPTH, NOT_JSON, checkJsonTextDepth, checkValueDepth, jsonTextDepth, scanJsonBytes, scanJsonText, scannedBytes, valueDepth } from '../../src/protocol/payload.js';
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

test('scanJsonBytes answers what scanJsonText answers for the text of UTF-8 bytes, never accepts other bytes, and reads only its range', () => {
  let seed = 4242;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const gen = (d: number): unknown => {
    const r = rnd();
    if (d > 6 || r < 0.3) return pick([0, -1, 1.5, -0.25e-7, 1e21, 'a', 'hé\n"\\/\t\u0001', '', 'ü€😀', '\ud800', '\u2028', true, false, null, 123456789]);
    if (r < 0.65) return Array.from({ length: Math.floor(rnd() * 4) }, () => gen(d + 1));
    const o: Record<string, unknown> = {};
    for (let k = Math.floor(rnd() * 4); k > 0; k--) o[pick(['a', 'b"c', 'd\\e', '', 'é', '😀'])] = gen(d + 1);
    return o;
  };
  // Byte mutations: ASCII that matters to JSON, whitespace, UTF-8 sequences good and bad (stray continuation,
  // overlong, surrogate halves, past U+10FFFF, bytes never in UTF-8, cut short).
  const pieces: number[][] = [
    ...['{', '}', '[', ']', ',', ':', '"', '\\', ' ', '\n', '\r', '\t', '0', '1', '-', '+', '.', 'e', 't', 'u', 'x', '/'].map((c) => [c.charCodeAt(0)]),
    [0x01], [0x7f], [0xc3, 0xa9], [0xe2, 0x82, 0xac], [0xf0, 0x9f, 0x98, 0x80], [0xe2, 0x80, 0xa8], [0xef, 0xbb, 0xbf],
    [0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf],
    [0xf0, 0x80, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xfe], [0xff], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98],
  ];
  const inputs: Buffer[] = ['', ' ', '\ufeff{}', '"\\ud800"', '"\\udc00\\ud800"', '[1,]', '{"a":1}', '"\u2028"', '1e5', '-0', '01', 'tru', 'nul']
    .map((t) => Buffer.from(t));
  inputs.push(Buffer.from('['.repeat(33) + ']'.repeat(33)), Buffer.from('['.repeat(32) + ']'.repeat(32)), Buffer.from('{"a":'.repeat(40) + '1' + '}'.repeat(40)));
  inputs.push(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), Buffer.from([0x22, 0xff, 0x22]), Buffer.from([0x22, 0xc3, 0x22]), Buffer.from([0xc3, 0xa9]), Buffer.from([0x22, 0xf4, 0x8f, 0xbf, 0xbf, 0x22]));
  for (let k = 0; k < 20_000; k++) {
    const bytes = [...Buffer.from(JSON.stringify(gen(0), null, rnd() < 0.3 ? pick([1, '\t', '\r\n']) : undefined))];
    for (let m = Math.floor(rnd() * 3); m > 0; m--) {
      const at = Math.floor(rnd() * (bytes.length + 1));
      const op = rnd();
      if (op < 0.25) bytes.splice(at, 1);
      else if (op < 0.5) bytes.length = at; // cut short
      else if (op < 0.75) bytes.splice(at, 0, ...pick(pieces));
      else bytes.splice(at, 1, ...pick(pieces));
    }
    inputs.push(Buffer.from(bytes));
  }
  let accepted = 0;
  let notUtf8 = 0;
  // Inside a larger buffer, between bytes that would change the answer if they were read (they complete a text cut short).
  const framings = [['["', '"]1'], ['[', ']}0'], ['{', '5"}]'], ['  ', 'e34"']].map(([a, b]) => [Buffer.from(a!), Buffer.from(b!)] as const);
  for (const [n, input] of inputs.entries()) {
    const [before, after] = framings[n % framings.length]!;
    const framed = Buffer.concat([before, input, after]);
    for (const limit of [100, MAX_PAYLOAD_DEPTH]) {
      const r = scanJsonBytes(framed, before.length, before.length + input.length, limit);
      const what = `scanJsonBytes(${JSON.stringify([...input])}, ${limit}) = ${r}`;
      if (isUtf8(input)) {
        const text = input.toString('utf8');
        assert.equal(r, scanJsonText(text, limit), `${what}, scanJsonText says ${scanJsonText(text, limit)}`);
        let parses = true;
        try {
          JSON.parse(text);
        } catch {
          parses = false;
        }
        if (limit === 100) assert.equal(r !== NOT_JSON, parses, what);
        if (r >= 0 && r <= limit) assert.equal(scannedBytes.lineBreak, input.includes(0x0a) || input.includes(0x0d), `${what}: line break`);
      } else {
        assert.ok(r < 0 || r > limit, `${what}: bytes that are not UTF-8 accepted`);
      }
    }
    if (!isUtf8(input)) notUtf8++;
    else if (scanJsonBytes(input, 0, input.length) >= 0) accepted++;
  }
  assert.ok(accepted > 5000 && notUtf8 > 2000 && accepted + notUtf8 < inputs.length - 2000, `every kind tried: ${accepted} accepted, ${notUtf8} not UTF-8 of ${inputs.length}`);
  // Valid JSON inside a string once its bytes are decoded with U+FFFD, but not UTF-8: never accepted as bytes.
  assert.ok(scanJsonBytes(Buffer.from([0x22, 0xff, 0x22]), 0, 3) < 0);
  assert.equal(scanJsonText(Buffer.from([0x22, 0xff, 0x22]).toString()), 0);
  assert.equal(scanJsonBytes(Buffer.from('['.repeat(40) + 'garbage'), 0, 47, 32), 33);
});
