/**
 * HS256 JWT verification done synchronously with node:crypto. jose verifies
 * through WebCrypto, whose every call is an async job costing ~65-100 µs of
 * main-thread CPU against ~10 µs here (bench/results/issue15-session4): with
 * one token per connect, that was an eighth of a connect's server CPU.
 * The header and the claims set are each decoded and parsed once, here (jose's
 * decodeProtectedHeader and decodeJwt split and decoded the token twice, through
 * strings and TextDecoder); the checks are jose's jwtVerify ones for our options
 * (algorithms ['HS256'], a clock tolerance), nothing laxer:
 * - header and claims set are canonical base64url of a JSON object;
 * - the header names alg HS256 and no `crit` extension (none is understood);
 * - the signature is 32 bytes in canonical base64url, compared in constant time;
 * - exp, nbf and iat, when present, are numbers; exp is in the future and nbf
 *   in the past, each within the tolerance.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';

export class TokenExpired extends Error {}
export class TokenInvalid extends Error {}

/** Base64url without padding (a length of 4n + 1 cannot be: Buffer would drop the last character). */
const SEGMENT = /^[A-Za-z0-9_-]+$/;

/** A token segment's JSON object; `what` names it in the error, as jose does. */
function segmentObject(token: string, from: number, to: number, what: string): Record<string, unknown> {
  const segment = token.slice(from, to);
  if (segment.length % 4 === 1 || !SEGMENT.test(segment)) throw new TokenInvalid(`Invalid ${what}: not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new TokenInvalid(`Invalid ${what}: not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TokenInvalid(`Invalid ${what}: not a JSON object`);
  return value as Record<string, unknown>;
}

/** 32 bytes of HMAC-SHA256 in base64url without padding: 43 characters, the last one of 16. */
const SIGNATURE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

export class Hs256Verifier {
  private readonly key: KeyObject;

  constructor(secret: string) {
    this.key = createSecretKey(Buffer.from(secret, 'utf8'));
  }

  /** The claims set of a token signed with this key; throws TokenExpired or TokenInvalid. */
  verify(token: string, nowS: number, toleranceS: number): Record<string, unknown> {
    const dot = token.lastIndexOf('.');
    const first = token.indexOf('.');
    if (first <= 0 || dot === first || dot === token.length - 1 || token.indexOf('.', first + 1) !== dot) throw new TokenInvalid('Invalid Compact JWS');
    const signature = token.slice(dot + 1);
    // The header first: an alg other than HS256 (none, HS512, RS256...) is refused whatever the signature.
    const header = segmentObject(token, 0, first, 'Protected Header');
    if (header['alg'] !== 'HS256') throw new TokenInvalid('"alg" (Algorithm) Header Parameter value not allowed');
    if (header['crit'] !== undefined) throw new TokenInvalid('Extension Header Parameter "crit" is not supported');
    if (!SIGNATURE.test(signature)) throw new TokenInvalid('signature verification failed');
    const mac = createHmac('sha256', this.key).update(token.slice(0, dot)).digest();
    if (!timingSafeEqual(mac, Buffer.from(signature, 'base64url'))) throw new TokenInvalid('signature verification failed');
    const claims = segmentObject(token, first + 1, dot, 'JWT Claims Set');
    for (const name of ['exp', 'nbf', 'iat']) {
      if (claims[name] !== undefined && typeof claims[name] !== 'number') throw new TokenInvalid(`"${name}" claim must be a number`);
    }
    const exp = claims['exp'] as number | undefined;
    if (exp !== undefined && exp <= nowS - toleranceS) throw new TokenExpired('"exp" claim timestamp check failed');
    const nbf = claims['nbf'] as number | undefined;
    if (nbf !== undefined && nbf > nowS + toleranceS) throw new TokenInvalid('"nbf" claim timestamp check failed');
    return claims;
  }
}
