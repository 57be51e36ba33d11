import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_RETRY, baseRetryDelay, checkRetryOptions, mayRetry, retryDelay, retryDelayBounds, type RetryOptions } from '../../src/client/backoff.js';
import { reasonFromClose } from '../../src/client/reasons.js';
import { splitJsonFrame } from '../../src/client/frames.js';

const exact: RetryOptions = { ...DEFAULT_RETRY, retryDelayJitter: 0 };

test('the defaults are Autobahn-style: unlimited retries, 1 s growing by 1.5 up to 60 s', () => {
  assert.deepEqual({ ...DEFAULT_RETRY }, { maxRetries: -1, initialRetryDelay: 1, maxRetryDelay: 60, retryDelayGrowth: 1.5, retryDelayJitter: 0.1 });
});

test('without jitter the delays grow by retryDelayGrowth and stop at maxRetryDelay', () => {
  const seq = Array.from({ length: 14 }, (_, n) => retryDelay(n, exact));
  const expected = [1, 1.5, 2.25, 3.375, 5.0625, 7.59375, 11.390625, 17.0859375, 25.62890625, 38.443359375, 57.6650390625, 60, 60, 60];
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(seq[i]! - expected[i]!) < 1e-9, `retry ${i}: ${seq[i]} != ${expected[i]}`);
  assert.equal(retryDelay(100_000, exact), 60, 'very large retry counts stay at the cap, not Infinity');
});

test('jitter takes at most retryDelayJitter of the base away and never exceeds the base', () => {
  const o: RetryOptions = { ...DEFAULT_RETRY, retryDelayJitter: 0.25 };
  assert.equal(retryDelay(3, o, () => 0), baseRetryDelay(3, o), 'r = 0 gives the base delay');
  assert.ok(Math.abs(retryDelay(3, o, () => 1) - baseRetryDelay(3, o) * 0.75) < 1e-9, 'r -> 1 gives base * (1 - jitter)');
  let seed = 42;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let n = 0; n < 20; n++) {
    const { min, max } = retryDelayBounds(n, o);
    assert.equal(max, baseRetryDelay(n, o));
    assert.ok(Math.abs(min - max * 0.75) < 1e-9);
    const samples = Array.from({ length: 200 }, () => retryDelay(n, o, random));
    for (const d of samples) assert.ok(d >= min && d <= max, `retry ${n}: ${d} outside [${min}, ${max}]`);
    // The samples spread over the interval rather than sitting at one end.
    assert.ok(Math.max(...samples) - Math.min(...samples) > (max - min) * 0.5, `retry ${n}: jitter does not spread`);
  }
  const full: RetryOptions = { ...DEFAULT_RETRY, retryDelayJitter: 1 };
  assert.deepEqual(retryDelayBounds(0, full), { min: 0, max: 1 }, 'full jitter: anywhere in [0, base]');
});

test('maxRetries limits retries; -1 never gives up', () => {
  const three: RetryOptions = { ...DEFAULT_RETRY, maxRetries: 3 };
  assert.deepEqual([0, 1, 2, 3, 4].map((n) => mayRetry(n, three)), [true, true, true, false, false]);
  assert.equal(mayRetry(1e9, DEFAULT_RETRY), true);
  assert.equal(mayRetry(0, { ...DEFAULT_RETRY, maxRetries: 0 }), false);
});

test('bad retry options are refused with the name of the parameter', () => {
  assert.throws(() => checkRetryOptions({ ...DEFAULT_RETRY, maxRetries: -2 }), /maxRetries/);
  assert.throws(() => checkRetryOptions({ ...DEFAULT_RETRY, retryDelayGrowth: 0.5 }), /retryDelayGrowth/);
  assert.throws(() => checkRetryOptions({ ...DEFAULT_RETRY, retryDelayJitter: 1.5 }), /retryDelayJitter/);
  assert.throws(() => checkRetryOptions({ ...DEFAULT_RETRY, maxRetryDelay: 0.5 }), /maxRetryDelay/);
  assert.throws(() => checkRetryOptions({ ...DEFAULT_RETRY, initialRetryDelay: Number.NaN }), /initialRetryDelay/);
});

test('close codes map to reasons with the catalog reconnect flag', () => {
  const r = (code: number): [string, boolean] => {
    const x = reasonFromClose(code, '');
    return [x.name, x.reconnect];
  };
  assert.deepEqual(r(4001), ['token_invalid', false]);
  assert.deepEqual(r(4000), ['bad_request', false]);
  assert.deepEqual(r(4007), ['disconnected', false]);
  assert.deepEqual(r(4002), ['token_expired', true]);
  assert.deepEqual(r(4006), ['message_gap', true]);
  assert.deepEqual(r(1001), ['shutdown', true]);
  assert.deepEqual(r(1006), ['abnormal_closure', true]);
  assert.deepEqual(r(3999), ['closed', true]);
  assert.equal(reasonFromClose(4002, 'token expired: reconnect').message, 'token expired: reconnect');
});

test('a JSON frame may hold several objects separated by newlines', () => {
  assert.deepEqual(splitJsonFrame('{"a":1}'), [{ a: 1 }]);
  assert.deepEqual(splitJsonFrame('{"a":1}\n{"b":2}\n'), [{ a: 1 }, { b: 2 }]);
  assert.deepEqual(splitJsonFrame(new TextEncoder().encode('{"a":1}\n{"b":2}')), [{ a: 1 }, { b: 2 }]);
  assert.throws(() => splitJsonFrame('{"a":'), SyntaxError);
  assert.throws(() => splitJsonFrame(42), /unexpected frame type/);
});
