/**
 * readPublishLine, the edge's reading of a plain `publish` command in place
 * (src/protocol/codec.ts), fed bytes: what it accepts is exactly what
 * JSON.parse reads as such a command (id, method, channel, no_history, the
 * data's bytes parse to the same value within the depth limit), it never
 * reads outside its line, and a frame is read whole before any of it is used.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJsonFrame, decodeJsonFrameReadingPublishes, readPublishLine } from '../../src/protocol/codec.js';
import { MAX_PAYLOAD_DEPTH, valueDepth } from '../../src/protocol/payload.js';

interface Read {
  id: number;
  channel: string;
  data: string;
  noHistory: boolean;
}

const make = (id: number, channel: string, frame: Uint8Array, start: number, end: number, noHistory: boolean): Read => ({
  id,
  channel,
  data: Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('utf8', start, end),
  noHistory,
});

/** readPublishLine of `text`, with bytes around it that would complete a line cut short (it must stop at its range). */
function read(text: string | Buffer): Read | null {
  const line = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const framed = Buffer.concat([Buffer.from('}}"]1'), line, Buffer.from('}}]"1,')]);
  return readPublishLine(framed, 5, 5 + line.length, make);
}

test('plain publish commands are read in place, keys in any order, no_history optional', () => {
  assert.deepEqual(read('{"id":7,"method":"publish","params":{"channel":"room-1","data":{"a":[1,"é"]}}}'), { id: 7, channel: 'room-1', data: '{"a":[1,"é"]}', noHistory: false });
  assert.deepEqual(read('{"params":{"no_history":true,"data":"x","channel":"c"},"id":0,"method":"publish"}'), { id: 0, channel: 'c', data: '"x"', noHistory: true });
  assert.deepEqual(read('{"method":"publish","params":{"data":-1.5e3,"channel":"a:b","no_history":false},"id":123456789012345}'), { id: 123456789012345, channel: 'a:b', data: '-1.5e3', noHistory: false });
  assert.deepEqual(read('{"id":1,"method":"publish","params":{"channel":"c","data":null}}')?.data, 'null');
  const limit = '['.repeat(MAX_PAYLOAD_DEPTH) + ']'.repeat(MAX_PAYLOAD_DEPTH);
  assert.equal(read(`{"id":1,"method":"publish","params":{"channel":"c","data":${limit}}}`)?.data, limit, 'the depth limit itself passes');
});

test('anything else is left to the full parse', () => {
  const refused = [
    '', '{}', '{"id":1}', ' {"id":1,"method":"publish","params":{"channel":"c","data":1}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":1}} ', // trailing space
    '{"id":1,"method":"publish","params":{"channel":"c","data":1}}\r', // CRLF lines
    '{"id": 1,"method":"publish","params":{"channel":"c","data":1}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data": 1}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":1 }}',
    '{"id":01,"method":"publish","params":{"channel":"c","data":1}}',
    '{"id":-1,"method":"publish","params":{"channel":"c","data":1}}',
    '{"id":1.0,"method":"publish","params":{"channel":"c","data":1}}',
    '{"id":1e3,"method":"publish","params":{"channel":"c","data":1}}',
    '{"id":1234567890123456,"method":"publish","params":{"channel":"c","data":1}}', // 16 digits
    '{"id":"1","method":"publish","params":{"channel":"c","data":1}}',
    '{"id":1,"id":2,"method":"publish","params":{"channel":"c","data":1}}',
    '{"id":1,"method":"publish","method":"publish","params":{"channel":"c","data":1}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":1},"params":{"channel":"c","data":1}}',
    '{"id":1,"method":"publishx","params":{"channel":"c","data":1}}',
    '{"id":1,"method":"subscribe","params":{"channel":"c"}}',
    '{"id":1,"method":"publish"}',
    '{"id":1,"method":"publish","params":{}}',
    '{"id":1,"method":"publish","params":{"channel":"c"}}',
    '{"id":1,"method":"publish","params":{"data":1}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":1,"extra":2}}',
    '{"id":1,"method":"publish","params":{"channel":"c","channel":"d","data":1}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":1,"data":2}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":1,"no_history":1}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":1,"no_history":true,"no_history":false}}',
    '{"id":1,"method":"publish","params":{"channel":"c\\"d","data":1}}',
    '{"id":1,"method":"publish","params":{"channel":"c\u0001","data":1}}',
    '{"id":1,"method":"publish","params":{"channel":"é","data":1}}',
    '{"id":1,"method":"publish","params":{"channel":1,"data":1}}',
    '{"\\u0069d":1,"method":"publish","params":{"channel":"c","data":1}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":[1,]}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":"\u0001"}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":1}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":1}}}',
    '{"id":1,"method":"publish","params":{"channel":"c","data":1},}',
    `{"id":1,"method":"publish","params":{"channel":"c","data":${'['.repeat(MAX_PAYLOAD_DEPTH + 1)}${']'.repeat(MAX_PAYLOAD_DEPTH + 1)}}}`,
  ];
  for (const line of refused) assert.equal(read(line), null, line);
  // Bytes that are not UTF-8 in the data: left to the full path (which reads them as Node's decoder does).
  const bad = Buffer.from('{"id":1,"method":"publish","params":{"channel":"c","data":"x"}}');
  bad[bad.indexOf('"x"') + 1] = 0xff;
  assert.equal(read(bad), null);
});

test('what it accepts is what JSON.parse reads as a publish command: 20 000 random and mutated lines', () => {
  let seed = 1717;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const gen = (d: number): unknown => {
    const r = rnd();
    if (d > 36 || r < 0.3) return pick([0, -1, 1.5, -0.25e-7, 1e21, 'a', 'hé\n"\\/\t\u0001', '', 'ü€😀', '\ud800', '\u2028', true, false, null]);
    if (r < 0.7) return Array.from({ length: Math.floor(rnd() * 3) }, () => gen(d + 1));
    const o: Record<string, unknown> = {};
    for (let k = Math.floor(rnd() * 3); k > 0; k--) o[pick(['a', 'b"c', 'id', 'params', 'data', 'é'])] = gen(d + 1);
    return o;
  };
  const keys = (members: string[]): string => `{${members.sort(() => rnd() - 0.5).join(',')}}`;
  const pieces = ['{', '}', '[', ']', ',', ':', '"', '\\', ' ', '1', '0', '-', 'e', 't', '\u0001', 'é', '"id":2', '"data":1', '"channel":"x"'];
  let accepted = 0;
  for (let k = 0; k < 20_000; k++) {
    const params = [`"channel":${JSON.stringify(pick(['room', 'a-b', 'x y', 'é', '', 'c"']))}`, `"data":${JSON.stringify(gen(0)) ?? '1'}`];
    if (rnd() < 0.3) params.push(`"no_history":${pick(['true', 'false', '1', 'null'])}`);
    const members = [`"id":${pick(['0', '1', '42', '007', '-3', '1.5', '999999999999999', '9999999999999999'])}`, `"method":${pick(['"publish"', '"publish"', '"ping"'])}`, `"params":${keys(params)}`];
    let line = keys(members);
    for (let m = rnd() < 0.5 ? 0 : Math.floor(rnd() * 3); m > 0; m--) {
      const at = Math.floor(rnd() * (line.length + 1));
      const op = rnd();
      if (op < 0.3) line = line.slice(0, at) + line.slice(at + 1);
      else if (op < 0.4) line = line.slice(0, at);
      else line = line.slice(0, at) + pick(pieces) + line.slice(at);
    }
    const got = read(line);
    if (got === null) continue;
    accepted++;
    // Accepted: JSON that the full path reads as the same publish, with keys it knows only.
    const parsed = JSON.parse(line) as { id: unknown; method: unknown; params: Record<string, unknown> };
    assert.deepEqual(Object.keys(parsed).sort(), ['id', 'method', 'params'], line);
    assert.equal(parsed.id, got.id, line);
    assert.ok(Number.isSafeInteger(got.id) && got.id >= 0, line);
    assert.equal(parsed.method, 'publish', line);
    assert.equal(parsed.params['channel'], got.channel, line);
    assert.equal(parsed.params['no_history'] === true, got.noHistory, line);
    assert.ok(Object.keys(parsed.params).every((p) => p === 'channel' || p === 'data' || p === 'no_history'), line);
    assert.ok('no_history' in parsed.params ? typeof parsed.params['no_history'] === 'boolean' : true, line);
    assert.deepEqual(JSON.parse(got.data), parsed.params['data'], line);
    assert.ok(valueDepth(parsed.params['data']) <= MAX_PAYLOAD_DEPTH, line);
    // The decoded line, lines of a frame: the same commands as the full parse.
    assert.deepEqual(decodeJsonFrameReadingPublishes(Buffer.from(`${line}\n\n${line}`), make), [got, got]);
  }
  assert.ok(accepted > 1500, `only ${accepted} lines read in place`);
});

test('a frame is read whole before any of it is used: one malformed line throws for all, empty lines are skipped', () => {
  const pub = (id: number): string => `{"id":${id},"method":"publish","params":{"channel":"c","data":${id}}}`;
  const mixed = `${pub(1)}\n{"id":2,"method":"ping"}\n\n{ "id":3, "method":"publish", "params":{"channel":"c","data":3} }\n${pub(4)}`;
  const items = decodeJsonFrameReadingPublishes(Buffer.from(mixed), make);
  assert.deepEqual(items, [
    { id: 1, channel: 'c', data: '1', noHistory: false },
    { id: 2, method: 'ping' },
    { id: 3, method: 'publish', params: { channel: 'c', data: 3 } },
    { id: 4, channel: 'c', data: '4', noHistory: false },
  ]);
  for (const frame of [`${pub(1)}\n{"id":2,`, `${pub(1)}\n${pub(2)}\nnot json`, '', `${pub(1)}\r\n${pub(2)} x`]) {
    assert.throws(() => decodeJsonFrameReadingPublishes(Buffer.from(frame), make), SyntaxError, JSON.stringify(frame));
    assert.throws(() => decodeJsonFrame(frame), SyntaxError, 'as the full parse throws');
  }
});
