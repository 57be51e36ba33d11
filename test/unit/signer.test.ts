/**
 * The itsdangerous-compatible signer: bytes in, verdict out. Verdicts are
 * compared with Debian's python3-itsdangerous (`/usr/bin/python3`) on the
 * same tokens: Python's own, channelstream's JS signer's, and mutations of
 * both (padding, "+", "/", characters outside the alphabet).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { sign, signerKey, verify, pyBase64Decode, MAX_AGE_S } from '../../src/compat/signer.js';
import { jsSign } from '../helpers/cs-js-signer.js';
import { PYTHON } from '../helpers/channelstream.js';

// Produced by /usr/bin/python3: TimestampSigner('s3cret').sign('/message') with time 1700000000.
const PY_TOKEN = '/message.ZVPxAA.lV5bkCyDAkYaDHSrisp4WJrFsKI';
const NOW = 1700000000;

/** Python's verdicts: TimestampSigner(secret).unsign(token, max_age=60) with the clock at `now`. */
const UNSIGN = `
import sys, json
from itsdangerous import TimestampSigner, BadSignature
data = json.load(sys.stdin)
out = []
for case in data['cases']:
    class At(TimestampSigner):
        def get_timestamp(self, now=case['now']):
            return now
    try:
        At(data['secret']).unsign(case['token'], max_age=60)
        out.append(True)
    except BadSignature:
        out.append(False)
print(json.dumps(out))
`;

function pyVerdicts(secret: string, cases: Array<{ token: string; now: number }>): boolean[] {
  return JSON.parse(execFileSync(PYTHON, ['-c', UNSIGN], { input: JSON.stringify({ secret, cases }), timeout: 20_000 }).toString('utf8')) as boolean[];
}

/** A small seeded generator, so every run tries the same tokens. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
  assert.deepEqual(verify(PY_TOKEN, 's3cret', null, NOW), { ok: true }, 'any value (channelstream_signed_value=any)');
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

test('channelstream JS signer tokens keep a "=" of padding and may keep a "+": accepted as itsdangerous accepts them', () => {
  // 0x6BEFBEFB encodes to "a+++", "+w==": the JS signer leaves "a-+++w=".
  const ts = 0x6befbefb;
  const token = jsSign('s3cret', ts);
  const tsText = token.split('.')[1]!;
  assert.equal(tsText, 'a-+++w=');
  assert.deepEqual(verify(token, 's3cret', null, ts + 1), { ok: true });
  assert.deepEqual(pyVerdicts('s3cret', [{ token, now: ts + 1 }]), [true], 'Python itsdangerous accepts it too');
  // With the default setting the signed value must be the path: "channelstream" is not.
  assert.deepEqual(verify(token, 's3cret', '/message', ts + 1), { ok: false, reason: 'wrong_value' });
});

test('every token form gets the verdict Debian python3-itsdangerous gives it', () => {
  const next = rng(13);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const secret = 'k3y-é';
  const insertions = ['=', '==', '+', '/', '-', '_', '!', ' ', '\t', 'é', '%', '.', 'A'];
  const cases: Array<{ token: string; now: number }> = [];
  for (let i = 0; i < 400; i++) {
    const ts = 0x60000000 + Math.floor(next() * 0x1fffffff);
    let token = next() < 0.5 ? jsSign(secret, ts) : sign(next() < 0.5 ? 'channelstream' : '/message', secret, ts);
    const mutations = Math.floor(next() * 3);
    for (let m = 0; m < mutations; m++) {
      const parts = token.split('.');
      const at = parts.length - 1 - Math.floor(next() * 2); // the signature or the timestamp
      const part = parts[at]!;
      const pos = Math.floor(next() * (part.length + 1));
      const kind = next();
      if (kind < 0.5) parts[at] = part.slice(0, pos) + pick(insertions) + part.slice(pos);
      else if (kind < 0.7) parts[at] = part.slice(0, pos) + part.slice(pos + 1);
      else if (kind < 0.85) parts[at] = part.replace(/-/g, '+').replace(/_/g, '/');
      else parts[at] = part + '='.repeat(1 + Math.floor(next() * 3));
      token = parts.join('.');
    }
    // Never in the future: itsdangerous 2 refuses any, Tidings allows 5 s of clock skew (tested above).
    cases.push({ token, now: ts + Math.floor(next() * 70) });
  }
  const py = pyVerdicts(secret, cases);
  let accepted = 0;
  cases.forEach((c, i) => {
    const ours = verify(c.token, secret, null, c.now).ok;
    assert.equal(ours, py[i], `${JSON.stringify(c.token)} at ${c.now}: Tidings ${ours}, itsdangerous ${py[i]}`);
    if (ours) accepted++;
  });
  // Both kinds of verdict occur, so the comparison means something.
  assert.ok(accepted > 50 && accepted < 350, `accepted ${accepted} of ${cases.length}`);
});

test('base64 decoding is Python\'s lenient one', () => {
  assert.deepEqual(pyBase64Decode('ZVPxAA'), Buffer.from([0x65, 0x53, 0xf1, 0]));
  assert.deepEqual(pyBase64Decode('ZVPxAA='), Buffer.from([0x65, 0x53, 0xf1, 0]));
  assert.deepEqual(pyBase64Decode('Z!V P\txAA'), Buffer.from([0x65, 0x53, 0xf1, 0]), 'characters outside the alphabet are skipped');
  assert.deepEqual(pyBase64Decode('+/-_'), pyBase64Decode('-_-_'));
  assert.equal(pyBase64Decode('ZVPxA'), null, 'one character past a multiple of 4');
  assert.deepEqual(pyBase64Decode('ZV==PxAA'), Buffer.from([0x65]), 'padding ends the data');
});
