/**
 * Rules every published payload must pass at the door, on every publish path
 * (client publish, HTTP API, ZeroMQ, compat routes, every protocol adapter),
 * so that whatever is accepted can be encoded for every kind of subscriber
 * (JSON, MessagePack, compat shapes) without throwing later, inside a loop
 * that serves others. Checked once at ingress; never again on the hot path.
 * No Node imports: the client SDK uses this module too.
 */
import { ErrorCodes, TidingsError } from './errors.js';

/**
 * Deepest nesting of arrays and objects accepted in a payload. The push that
 * carries a payload wraps it two levels deeper, and MessagePack encoders stop
 * at 100 levels: 32 leaves room for every envelope a protocol adds.
 */
export const MAX_PAYLOAD_DEPTH = 32;

/**
 * Deepest nesting of a whole request or command body (an HTTP body, a
 * director command): a payload sits at most two levels inside one (a
 * channelstream `/message` list, then its item). Checked on the text before
 * it is parsed, so no later step (JSON.stringify, an encoder) meets a value
 * deep enough to exhaust its stack.
 */
export const MAX_BODY_DEPTH = MAX_PAYLOAD_DEPTH + 2;

/**
 * Nesting depth of JSON text, read without parsing (strings are skipped).
 * Stops counting once `limit` is exceeded and returns limit + 1, so a
 * hostile, deeply nested text costs no more than its scan up to that point.
 */
export function jsonTextDepth(text: string, limit = MAX_PAYLOAD_DEPTH): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return limit + 1;
      }
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return max;
}

/** What scanJsonText returns for text that is not JSON. */
export const NOT_JSON = -1;

const OBJECT = 1;
const ARRAY = 2;
/** The kind of each open container, by depth (scanJsonText stops past its limit, so this is enough). */
const open = new Uint8Array(1024);

const isWs = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function skipWs(text: string, i: number): number {
  while (i < text.length && isWs(text.charCodeAt(i))) i++;
  return i;
}

const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

/** End of the string starting with the quote at `i`, or NOT_JSON. */
function skipString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; ) {
    const c = text.charCodeAt(j);
    if (c === 0x22) return j + 1;
    if (c < 0x20) return NOT_JSON;
    if (c !== 0x5c) {
      j++;
      continue;
    }
    const e = text.charCodeAt(j + 1);
    if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) j += 2;
    else if (e === 0x75 && isHex(text.charCodeAt(j + 2)) && isHex(text.charCodeAt(j + 3)) && isHex(text.charCodeAt(j + 4)) && isHex(text.charCodeAt(j + 5))) j += 6;
    else return NOT_JSON;
  }
  return NOT_JSON;
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

function skipDigits(text: string, i: number): number {
  while (i < text.length && isDigit(text.charCodeAt(i))) i++;
  return i;
}

/** End of the number starting at `i`, or NOT_JSON. */
function skipNumber(text: string, i: number): number {
  if (text.charCodeAt(i) === 0x2d) i++;
  const first = text.charCodeAt(i);
  if (first === 0x30) i++;
  else if (first >= 0x31 && first <= 0x39) i = skipDigits(text, i + 1);
  else return NOT_JSON;
  if (text.charCodeAt(i) === 0x2e) {
    if (!isDigit(text.charCodeAt(i + 1))) return NOT_JSON;
    i = skipDigits(text, i + 1);
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    const sign = text.charCodeAt(i);
    if (sign === 0x2b || sign === 0x2d) i++;
    if (!isDigit(text.charCodeAt(i))) return NOT_JSON;
    i = skipDigits(text, i);
  }
  return i;
}

/** The end of `"key" :` and the space after it, from `i`, or NOT_JSON. */
function skipKey(text: string, i: number): number {
  if (text.charCodeAt(i) !== 0x22) return NOT_JSON;
  i = skipWs(text, skipString(text, i));
  if (i < 0 || text.charCodeAt(i) !== 0x3a) return NOT_JSON;
  return skipWs(text, i + 1);
}

/**
 * Whether `text` is JSON (RFC 8259, what JSON.parse accepts) and how deep it
 * nests, in one pass that builds nothing: its nesting depth as jsonTextDepth
 * counts it, limit + 1 as soon as it nests deeper than `limit` (the rest is
 * not read), or NOT_JSON. For a door that only passes the text on (the
 * director sequences publishes as text), instead of parsing it to check it.
 */
export function scanJsonText(text: string, limit = MAX_PAYLOAD_DEPTH): number {
  if (limit >= open.length) throw new RangeError(`scanJsonText checks at most ${open.length - 1} levels`);
  const n = text.length;
  let depth = 0;
  let max = 0;
  let i = skipWs(text, 0);
  for (;;) {
    // A value at i.
    if (i >= n) return NOT_JSON;
    const c = text.charCodeAt(i);
    let closed = false;
    if (c === 0x7b || c === 0x5b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return limit + 1;
      }
      open[depth] = c === 0x7b ? OBJECT : ARRAY;
      i = skipWs(text, i + 1);
      if (text.charCodeAt(i) === (c === 0x7b ? 0x7d : 0x5d)) {
        i++;
        depth--;
        closed = true;
      } else {
        if (c === 0x7b && (i = skipKey(text, i)) < 0) return NOT_JSON;
        continue;
      }
    }
    if (!closed) {
      if (c === 0x22) i = skipString(text, i);
      else if (c === 0x2d || isDigit(c)) i = skipNumber(text, i);
      else if (c === 0x74 && text.startsWith('true', i)) i += 4;
      else if (c === 0x66 && text.startsWith('false', i)) i += 5;
      else if (c === 0x6e && text.startsWith('null', i)) i += 4;
      else return NOT_JSON;
      if (i < 0) return NOT_JSON;
    }
    // After a value: close containers, or go on to the next value.
    for (;;) {
      i = skipWs(text, i);
      if (depth === 0) return i === n ? max : NOT_JSON;
      const d = text.charCodeAt(i);
      if (d === 0x2c) {
        i = skipWs(text, i + 1);
        if (open[depth] === OBJECT && (i = skipKey(text, i)) < 0) return NOT_JSON;
        break;
      }
      if (d !== (open[depth] === OBJECT ? 0x7d : 0x5d)) return NOT_JSON;
      i++;
      depth--;
    }
  }
}

/** What scanJsonBytes returns for bytes that are not UTF-8 (found inside a string; outside one any byte past ASCII is NOT_JSON). */
export const NOT_UTF8 = -2;

/**
 * Set by scanJsonBytes: whether the text it accepted has a raw CR or LF
 * (whitespace between tokens: JSON strings cannot hold one); by
 * scanJsonValueBytes also where the value it accepted ends.
 */
export const scannedBytes = { lineBreak: false, end: 0 };

function skipWsBytes(b: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const c = b[i]!;
    if (c === 0x20 || c === 0x09) i++;
    else if (c === 0x0a || c === 0x0d) {
      scannedBytes.lineBreak = true;
      i++;
    } else break;
  }
  return i;
}

/** The byte at `i`, or -1 past `end` (a scan never reads beyond its range: the next entry of a batch may follow). */
const byteAt = (b: Uint8Array, i: number, end: number): number => (i < end ? b[i]! : -1);

const isCont = (c: number): boolean => (c & 0xc0) === 0x80;

/**
 * End of the UTF-8 sequence whose lead byte (>= 0x80) is at `i`, or NOT_UTF8
 * (what Node's decoder would replace with U+FFFD: stray continuations,
 * overlong forms, surrogates, past U+10FFFF, cut short).
 */
function skipUtf8(b: Uint8Array, i: number, end: number): number {
  const c = b[i]!;
  if (c >= 0xc2 && c <= 0xdf) return isCont(byteAt(b, i + 1, end)) ? i + 2 : NOT_UTF8;
  if (c >= 0xe0 && c <= 0xef) {
    const c1 = byteAt(b, i + 1, end);
    const ok1 = c === 0xe0 ? c1 >= 0xa0 && c1 <= 0xbf : c === 0xed ? c1 >= 0x80 && c1 <= 0x9f : isCont(c1);
    return ok1 && isCont(byteAt(b, i + 2, end)) ? i + 3 : NOT_UTF8;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const c1 = byteAt(b, i + 1, end);
    const ok1 = c === 0xf0 ? c1 >= 0x90 && c1 <= 0xbf : c === 0xf4 ? c1 >= 0x80 && c1 <= 0x8f : isCont(c1);
    return ok1 && isCont(byteAt(b, i + 2, end)) && isCont(byteAt(b, i + 3, end)) ? i + 4 : NOT_UTF8;
  }
  return NOT_UTF8;
}

/** End of the string starting with the quote at `i`, NOT_JSON or NOT_UTF8. */
function skipStringBytes(b: Uint8Array, i: number, end: number): number {
  for (let j = i + 1; j < end; ) {
    const c = b[j]!;
    if (c === 0x22) return j + 1;
    if (c < 0x20) return NOT_JSON;
    if (c >= 0x80) {
      if ((j = skipUtf8(b, j, end)) < 0) return NOT_UTF8;
      continue;
    }
    if (c !== 0x5c) {
      j++;
      continue;
    }
    const e = byteAt(b, j + 1, end);
    if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) j += 2;
    else if (e === 0x75 && isHex(byteAt(b, j + 2, end)) && isHex(byteAt(b, j + 3, end)) && isHex(byteAt(b, j + 4, end)) && isHex(byteAt(b, j + 5, end))) j += 6;
    else return NOT_JSON;
  }
  return NOT_JSON;
}

function skipDigitsBytes(b: Uint8Array, i: number, end: number): number {
  while (i < end && isDigit(b[i]!)) i++;
  return i;
}

/** End of the number starting at `i`, or NOT_JSON. */
function skipNumberBytes(b: Uint8Array, i: number, end: number): number {
  if (byteAt(b, i, end) === 0x2d) i++;
  const first = byteAt(b, i, end);
  if (first === 0x30) i++;
  else if (first >= 0x31 && first <= 0x39) i = skipDigitsBytes(b, i + 1, end);
  else return NOT_JSON;
  if (byteAt(b, i, end) === 0x2e) {
    if (!isDigit(byteAt(b, i + 1, end))) return NOT_JSON;
    i = skipDigitsBytes(b, i + 1, end);
  }
  const e = byteAt(b, i, end);
  if (e === 0x65 || e === 0x45) {
    i++;
    const sign = byteAt(b, i, end);
    if (sign === 0x2b || sign === 0x2d) i++;
    if (!isDigit(byteAt(b, i, end))) return NOT_JSON;
    i = skipDigitsBytes(b, i, end);
  }
  return i;
}

/** The end of `"key" :` and the space after it, from `i`; NOT_JSON or NOT_UTF8. */
function skipKeyBytes(b: Uint8Array, i: number, end: number): number {
  if (byteAt(b, i, end) !== 0x22) return NOT_JSON;
  i = skipStringBytes(b, i, end);
  if (i < 0) return i;
  i = skipWsBytes(b, i, end);
  if (byteAt(b, i, end) !== 0x3a) return NOT_JSON;
  return skipWsBytes(b, i + 1, end);
}

/** Whether b[i..] starts with the ASCII `word` (within `end`). */
function hasWord(b: Uint8Array, i: number, end: number, word: string): boolean {
  if (end - i < word.length) return false;
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word.charCodeAt(k)) return false;
  return true;
}

/**
 * scanJsonText on UTF-8 bytes, b[start..end), without decoding them: for
 * bytes that are UTF-8 it answers exactly what scanJsonText answers for
 * their text (the depth, limit + 1 past the limit, or NOT_JSON); bytes that
 * are not UTF-8 are never accepted (NOT_UTF8, or NOT_JSON when the text is
 * refused before the bad byte): a caller that must treat them as Node's
 * decoder does (U+FFFD) decodes them and scans the text. Sets
 * scannedBytes.lineBreak. Never reads outside [start, end).
 */
export function scanJsonBytes(b: Uint8Array, start: number, end: number, limit = MAX_PAYLOAD_DEPTH): number {
  return scanBytes(b, start, end, limit, true);
}

/**
 * scanJsonBytes of the one JSON value that starts at b[start] (no
 * whitespace before it), whatever follows it within `end`: its depth
 * (limit + 1 past the limit, NOT_JSON, NOT_UTF8 as scanJsonBytes answers),
 * and, when accepted, scannedBytes.end is the index just past it. For
 * values inside a larger text (a publish command's data, read in place).
 */
export function scanJsonValueBytes(b: Uint8Array, start: number, end: number, limit = MAX_PAYLOAD_DEPTH): number {
  const c = byteAt(b, start, end);
  if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) return NOT_JSON;
  scannedBytes.end = -1; // no end unless accepted (past the limit the scan stops short)
  return scanBytes(b, start, end, limit, false);
}

function scanBytes(b: Uint8Array, start: number, end: number, limit: number, whole: boolean): number {
  if (limit >= open.length) throw new RangeError(`scanJsonBytes checks at most ${open.length - 1} levels`);
  scannedBytes.lineBreak = false;
  let depth = 0;
  let max = 0;
  let i = skipWsBytes(b, start, end);
  for (;;) {
    // A value at i.
    if (i >= end) return NOT_JSON;
    const c = b[i]!;
    let closed = false;
    if (c === 0x7b || c === 0x5b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return limit + 1;
      }
      open[depth] = c === 0x7b ? OBJECT : ARRAY;
      i = skipWsBytes(b, i + 1, end);
      if (byteAt(b, i, end) === (c === 0x7b ? 0x7d : 0x5d)) {
        i++;
        depth--;
        closed = true;
      } else {
        if (c === 0x7b && (i = skipKeyBytes(b, i, end)) < 0) return i;
        continue;
      }
    }
    if (!closed) {
      if (c === 0x22) i = skipStringBytes(b, i, end);
      else if (c === 0x2d || isDigit(c)) i = skipNumberBytes(b, i, end);
      else if (c === 0x74 && hasWord(b, i, end, 'true')) i += 4;
      else if (c === 0x66 && hasWord(b, i, end, 'false')) i += 5;
      else if (c === 0x6e && hasWord(b, i, end, 'null')) i += 4;
      else return NOT_JSON;
      if (i < 0) return i;
    }
    // After a value: close containers, or go on to the next value.
    for (;;) {
      if (depth === 0 && !whole) {
        scannedBytes.end = i;
        return max;
      }
      i = skipWsBytes(b, i, end);
      if (depth === 0) return i === end ? max : NOT_JSON;
      const d = byteAt(b, i, end);
      if (d === 0x2c) {
        i = skipWsBytes(b, i + 1, end);
        if (open[depth] === OBJECT && (i = skipKeyBytes(b, i, end)) < 0) return i;
        break;
      }
      if (d !== (open[depth] === OBJECT ? 0x7d : 0x5d)) return NOT_JSON;
      i++;
      depth--;
    }
  }
}

/** Nesting depth of a decoded value (arrays, plain objects, maps); stops past `limit`. */
export function valueDepth(value: unknown, limit = MAX_PAYLOAD_DEPTH): number {
  let max = 0;
  // Iterative walk: a hostile value must not exhaust the stack here either.
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) continue;
    const depth = d + 1;
    if (depth > max) {
      max = depth;
      if (max > limit) return limit + 1;
    }
    const children = Array.isArray(v) ? v : v instanceof Map ? [...v.values()] : Object.values(v as Record<string, unknown>);
    for (const child of children) stack.push([child, depth]);
  }
  return max;
}

/** Throws PAYLOAD_TOO_DEEP when JSON text nests deeper than `limit`. */
export function checkJsonTextDepth(text: string, limit = MAX_PAYLOAD_DEPTH): void {
  if (jsonTextDepth(text, limit) > limit) throw tooDeep(limit);
}

/** Throws PAYLOAD_TOO_DEEP when a decoded value nests deeper than `limit`. */
export function checkValueDepth(value: unknown, limit = MAX_PAYLOAD_DEPTH): void {
  if (valueDepth(value, limit) > limit) throw tooDeep(limit);
}

function tooDeep(limit: number): TidingsError {
  return new TidingsError(ErrorCodes.PAYLOAD_TOO_DEEP, `payload nests deeper than ${limit} levels of arrays and objects`);
}
