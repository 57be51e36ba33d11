/**
 * Python itsdangerous' `TimestampSigner(secret)` with its defaults, as
 * channelstream web apps sign server API requests:
 *   key       = SHA1("itsdangerous.Signer" + "signer" + secret)   (django-concat derivation)
 *   ts        = base64url(big-endian unix seconds, no leading zero bytes), no padding
 *   signature = base64url(HMAC-SHA1(key, value + "." + ts)), no padding
 *   token     = value + "." + ts + "." + signature
 * Tidings also requires `value` to equal the endpoint path (channelstream
 * never checked it), rejects timestamps from the future beyond a small clock
 * skew, and compares in constant time.
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

function bytesToInt(b: Buffer): number {
  let n = 0;
  for (const x of b) n = n * 256 + x;
  return n;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

export function sign(value: string, secret: string, nowS: number): string {
  const signed = `${value}.${intToBytes(nowS).toString('base64url')}`;
  return `${signed}.${createHmac('sha1', signerKey(secret)).update(signed, 'utf8').digest('base64url')}`;
}

/** Check `token` against `secret`, the expected signed value and the clock. */
export function verify(token: string, secret: string, expectedValue: string, nowS: number, maxAgeS = MAX_AGE_S): Verdict {
  const sigDot = token.lastIndexOf('.');
  if (sigDot <= 0) return { ok: false, reason: 'malformed' };
  const tsDot = token.lastIndexOf('.', sigDot - 1);
  if (tsDot < 0) return { ok: false, reason: 'malformed' };
  const signed = token.slice(0, sigDot);
  const sig = token.slice(sigDot + 1);
  const tsText = token.slice(tsDot + 1, sigDot);
  if (!B64URL.test(sig) || !B64URL.test(tsText) || tsText.length === 0 || tsText.length > 11) return { ok: false, reason: 'malformed' };
  const expected = createHmac('sha1', signerKey(secret)).update(signed, 'utf8').digest();
  const given = Buffer.from(sig, 'base64url');
  // Compare equal lengths only; a wrong length is a wrong signature all the same.
  const sigOk = given.length === expected.length && timingSafeEqual(given, expected);
  if (!sigOk) return { ok: false, reason: 'bad_signature' };
  const value = token.slice(0, tsDot);
  const a = createHash('sha256').update(value, 'utf8').digest();
  const b = createHash('sha256').update(expectedValue, 'utf8').digest();
  if (!timingSafeEqual(a, b)) return { ok: false, reason: 'wrong_value' };
  const ts = bytesToInt(Buffer.from(tsText, 'base64url'));
  if (ts > nowS + FUTURE_SKEW_S) return { ok: false, reason: 'future' };
  if (nowS - ts > maxAgeS) return { ok: false, reason: 'expired' };
  return { ok: true };
}
