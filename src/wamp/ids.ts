/**
 * WAMP IDs: integers in [1, 2^53]. Global-scope IDs (sessions, publications)
 * are drawn at random; a publication's ID is derived from its channel, epoch
 * and offset, so the PUBLISHED a publisher gets and the EVENTs subscribers
 * get on every node carry the same ID without any coordination. Pure: the
 * Web Crypto global, no Node imports.
 */

/** A uniformly random ID in [1, 2^53]. */
export function randomId(): number {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  // 21 high bits + 32 low bits = 53 random bits, shifted into [1, 2^53].
  return (words[0]! & 0x1fffff) * 0x100000000 + words[1]! + 1;
}

/** 53-bit hash of a string (two independent 32-bit FNV-1a style lanes). */
function hash53(text: string): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b);
  h1 ^= h1 >>> 13;
  return (h2 & 0x1fffff) * 0x100000000 + (h1 >>> 0);
}

/** The publication ID of the message at `offset` of `channel` in `epoch`. */
export function publicationId(channel: string, epoch: string, offset: number): number {
  return hash53(`${channel}\u0000${epoch}\u0000${offset}`) + 1;
}
