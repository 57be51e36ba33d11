/** The itsdangerous-compatible signer: bytes in, verdict out. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sign, signerKey, verify, MAX_AGE_S } from '../../src/compat/signer.js';

// Produced by /usr/bin/python3: TimestampSigner('s3cret').sign('/message') with time 1700000000.
const PY_TOKEN = '/message.ZVPxAA.lV5bkCyDAkYaDHSrisp4WJrFsKI';
const NOW = 1700000000;

test('the key is SHA1 of salt + "signer" + secret (django-concat)', () => {
  assert.equal(signerKey('s3cret').toString('hex').length, 40);
  assert.notDeepEqual(signerKey('a'), signerKey('b'));
});

test('a token made by Python itsdangerous verifies; our own token is byte-identical', () => {
  assert.deepEqual(verify(PY_TOKEN, 's3cret', '/message', NOW), { ok: true });
  assert.equal(sign('/message', 's3cret', NOW), PY_TOKEN);
});

test('wrong secret, wrong path, tampered signature, expiry, future and malformed tokens are rejected', () => {
  assert.deepEqual(verify(PY_TOKEN, 'other', '/message', NOW), { ok: false, reason: 'bad_signature' });
  assert.deepEqual(verify(PY_TOKEN, 's3cret', '/connect', NOW), { ok: false, reason: 'wrong_value' });
  assert.deepEqual(verify(PY_TOKEN.slice(0, -1) + (PY_TOKEN.endsWith('A') ? 'B' : 'A'), 's3cret', '/message', NOW), { ok: false, reason: 'bad_signature' });
  assert.deepEqual(verify(PY_TOKEN, 's3cret', '/message', NOW + MAX_AGE_S), { ok: true });
  assert.deepEqual(verify(PY_TOKEN, 's3cret', '/message', NOW + MAX_AGE_S + 1), { ok: false, reason: 'expired' });
  assert.deepEqual(verify(PY_TOKEN, 's3cret', '/message', NOW - 60), { ok: false, reason: 'future' });
  for (const bad of ['', 'nodots', '/message.', '.x.y', '/message.!!.abc', '/message.ZVPxAA.']) {
    assert.equal(verify(bad, 's3cret', '/message', NOW).ok, false, bad);
  }
});

test('a value containing dots is split at the last two dots', () => {
  const t = sign('/a.b.c', 'k', NOW);
  assert.deepEqual(verify(t, 'k', '/a.b.c', NOW), { ok: true });
});
