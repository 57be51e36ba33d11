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
