/**
 * Python itsdangerous' `TimestampSigner(secret)` with its defaults, as
 * channelstream web apps sign server API requests:
 *   key       = SHA1("itsdangerous.Signer" + "signer" + secret)   (django-concat derivation)
 *   ts        = base64url(big-endian unix seconds, no leading zero bytes), no padding
 *   signature = base64url(HMAC-SHA1(key, value + "." + ts)), no padding
 *   token     = value + "." + ts + "." + signature
 *
 * Verification accepts every form itsdangerous' `unsign` accepts: its
 * base64 decoder is Python's lenient one (characters outside the alphabet
 * are skipped, `+` and `/` count as `-` and `_`, padding is optional and
 * ends the data), which is what lets channelstream's own JS signer work: it
 * strips only the first `=` and swaps only the first `+` and `/`.
 * test/unit/signer.test.ts compares the verdicts with Debian's
 * python3-itsdangerous token by token.
 *
 * Tidings also checks the signed value (by default it must equal the
 * endpoint path; channelstream 0.7 never compared it), rejects timestamps
 * from the future beyond a small clock skew (itsdangerous 2 rejects any),
 * and compares in constant time.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const MAX_AGE_S = 60;
/** Seconds a signer's clock may run ahead of ours. */
export const FUTURE_SKEW_S = 5;

export type Verdict = { ok: true } | { ok: false; reason: 'malformed' | 'bad_signature' | 'wrong_value' | 'expired' | 'future' };

export function signerKey(secret: string): Buffer {
  return createHash('sha1').update('itsdangerous.Signer').update('signer').update(secret, 'utf8').digest();
}

function intToBytes(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n % 256);
    n = Math.floor(n / 256);
  }
  return Buffer.from(bytes);
}

/** Python's standard base64 alphabet after urlsafe translation ('-' -> '+', '_' -> '/'). */
const B64_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;
B64_VALUE['-'.charCodeAt(0)] = 62;
B64_VALUE['_'.charCodeAt(0)] = 63;
const PAD = '='.charCodeAt(0);

/**
 * itsdangerous' `base64_decode`: pad to a multiple of 4 with `=`, then
 * CPython's non-strict `binascii.a2b_base64` after the urlsafe translation.
 * Returns null where Python raises. `text` is decoded from the request as
 * Python sees it: its UTF-8 bytes (non-ASCII bytes are skipped as invalid).
 */
export function pyBase64Decode(text: string): Buffer | null {
  const raw = Buffer.from(text, 'utf8');
  const padded = Buffer.concat([raw, Buffer.alloc((4 - (raw.length % 4)) % 4, PAD)]);
  const out: number[] = [];
  let quad = 0;
  let left = 0;
  let pads = 0;
  for (const ch of padded) {
    if (ch === PAD) {
      // A pad after two or three data characters of a quad ends the data.
      if (quad >= 2 && quad + ++pads >= 4) return Buffer.from(out);
      continue;
    }
    const v = B64_VALUE[ch]!;
    if (v < 0) continue;
    pads = 0;
    switch (quad) {
      case 0:
        quad = 1;
        left = v;
        break;
      case 1:
        quad = 2;
        out.push(((left << 2) | (v >> 4)) & 0xff);
        left = v & 0x0f;
        break;
      case 2:
        quad = 3;
        out.push(((left << 4) | (v >> 2)) & 0xff);
        left = v & 0x03;
        break;
      default:
        quad = 0;
        out.push(((left << 6) | v) & 0xff);
        left = 0;
    }
  }
  return quad === 0 ? Buffer.from(out) : null;
}

export function sign(value: string, secret: string, nowS: number): string {
  const signed = `${value}.${intToBytes(nowS).toString('base64url')}`;
  return `${signed}.${createHmac('sha1', signerKey(secret)).update(signed, 'utf8').digest('base64url')}`;
}

/**
 * Check `token` against `secret`, the expected signed value (null: any
 * value, channelstream's behaviour) and the clock.
 */
export function verify(token: string, secret: string, expectedValue: string | null, nowS: number, maxAgeS = MAX_AGE_S): Verdict {
  const sigDot = token.lastIndexOf('.');
  if (sigDot < 0) return { ok: false, reason: 'malformed' };
  const tsDot = token.lastIndexOf('.', sigDot - 1);
  if (tsDot < 0) return { ok: false, reason: 'malformed' };
  const signed = token.slice(0, sigDot);
  const given = pyBase64Decode(token.slice(sigDot + 1));
  const expected = createHmac('sha1', signerKey(secret)).update(signed, 'utf8').digest();
  // Compare equal lengths only; a wrong length is a wrong signature all the same.
  if (given === null || given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad_signature' };
  if (expectedValue !== null) {
    const a = createHash('sha256').update(token.slice(0, tsDot), 'utf8').digest();
    const b = createHash('sha256').update(expectedValue, 'utf8').digest();
    if (!timingSafeEqual(a, b)) return { ok: false, reason: 'wrong_value' };
  }
  // itsdangerous reads the timestamp as at most 8 big-endian bytes.
  const tsBytes = pyBase64Decode(token.slice(tsDot + 1, sigDot));
  if (tsBytes === null || tsBytes.length > 8) return { ok: false, reason: 'malformed' };
  let ts = 0;
  for (const x of tsBytes) ts = ts * 256 + x;
  if (ts > nowS + FUTURE_SKEW_S) return { ok: false, reason: 'future' };
  if (nowS - ts > maxAgeS) return { ok: false, reason: 'expired' };
  return { ok: true };
}
