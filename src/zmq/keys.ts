/**
 * CURVE keys as ZeroMQ writes them: Z85 text (ZeroMQ RFC 32), 40 characters
 * for a 32-byte key. The public key of a secret key is its X25519 public
 * value, which node:crypto computes, so a node needs only its secret key.
 * Key files hold what `tidings keygen` prints (ZeroMQ's curve_keygen layout):
 *
 *   == CURVE PUBLIC KEY ==
 *   <40 characters>
 *   == CURVE SECRET KEY ==
 *   <40 characters>
 *
 * or just keys, one per line; blank lines and `#` comments are ignored.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

export const KEY_TEXT_LENGTH = 40;

/** Z85-encode bytes whose length is a multiple of 4. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError('Z85 encodes multiples of 4 bytes');
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let v = ((bytes[i]! << 24) >>> 0) + (bytes[i + 1]! << 16) + (bytes[i + 2]! << 8) + bytes[i + 3]!;
    let chunk = '';
    for (let k = 0; k < 5; k++) {
      chunk = ALPHABET[v % 85]! + chunk;
      v = Math.floor(v / 85);
    }
    out += chunk;
  }
  return out;
}

/** Z85-decode text whose length is a multiple of 5; null if it is not Z85. */
export function z85Decode(text: string): Buffer | null {
  if (text.length % 5 !== 0) return null;
  const out = Buffer.allocUnsafe((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let v = 0;
    for (let k = 0; k < 5; k++) {
      const c = text.charCodeAt(i + k);
      const d = c < 128 ? DECODE[c]! : -1;
      if (d < 0) return null;
      v = v * 85 + d;
    }
    if (v > 0xffffffff) return null;
    out.writeUInt32BE(v, (i / 5) * 4);
  }
  return out;
}

/** True for a Z85 CURVE key (40 characters decoding to 32 bytes). */
export function isCurveKey(text: string): boolean {
  return text.length === KEY_TEXT_LENGTH && z85Decode(text) !== null;
}

const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The Z85 public key of a Z85 secret key (X25519). */
export function publicKeyOf(secretKey: string): string {
  const raw = z85Decode(secretKey);
  if (!raw || raw.length !== 32) throw new RangeError('not a Z85 CURVE secret key');
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(priv).export({ format: 'jwk' }) as { x: string };
  return z85Encode(Buffer.from(jwk.x, 'base64url'));
}

/** What `tidings keygen` prints, as ZeroMQ's curve_keygen does. */
export function formatKeyPair(pair: { publicKey: string; secretKey: string }): string {
  return `== CURVE PUBLIC KEY ==\n${pair.publicKey}\n== CURVE SECRET KEY ==\n${pair.secretKey}\n`;
}

/** A public key file: only the public section. */
export function formatPublicKey(publicKey: string): string {
  return `== CURVE PUBLIC KEY ==\n${publicKey}\n`;
}

export interface KeyText {
  /** Keys under a "== CURVE PUBLIC KEY ==" header. */
  publicKeys: string[];
  /** Keys under a "== CURVE SECRET KEY ==" header. */
  secretKeys: string[];
  /** Keys before any header (a file of bare keys). */
  bareKeys: string[];
}

/**
 * Keys in a key file's text, by section. Throws on a line that is neither a
 * key, a header, a comment nor blank.
 */
export function parseKeyText(text: string): KeyText {
  const out: KeyText = { publicKeys: [], secretKeys: [], bareKeys: [] };
  let section: 'publicKeys' | 'secretKeys' | 'bareKeys' = 'bareKeys';
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (/^==.*==$/.test(line)) {
      section = /SECRET/i.test(line) ? 'secretKeys' : 'publicKeys';
      continue;
    }
    if (!isCurveKey(line)) throw new RangeError(`line ${i + 1} is not a Z85 CURVE key (40 characters)`);
    out[section].push(line);
  }
  return out;
}
