/**
 * Frame codecs for the client protocol. JSON is the default: a text frame holds
 * one JSON object, or several separated by "\n" (the server may batch; clients
 * must split). MessagePack (subprotocol tidings.v1.msgpack) frames hold one or
 * more concatenated MessagePack values.
 */
import { encode, decodeMulti } from '@msgpack/msgpack';
import { MAX_PAYLOAD_DEPTH, scanJsonValueBytes, scannedBytes } from './payload.js';

export type Format = 'json' | 'msgpack';

const decoder = new TextDecoder('utf-8', { fatal: true });
/** As Node's Buffer#toString: bytes that are not UTF-8 become U+FFFD (a websocket text frame is UTF-8 already). */
const lenient = new TextDecoder('utf-8');

/** Parse a JSON text frame into its objects. Throws on malformed input. */
export function decodeJsonFrame(data: string | Uint8Array): unknown[] {
  const text = typeof data === 'string' ? data : decoder.decode(data);
  if (text.indexOf('\n') === -1) return [JSON.parse(text)];
  const out: unknown[] = [];
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    out.push(JSON.parse(line));
  }
  return out;
}

export function decodeMsgpackFrame(data: Uint8Array): unknown[] {
  return [...decodeMulti(data)];
}

export function encodeMsgpack(value: unknown): Uint8Array {
  return encode(value, { ignoreUndefined: true });
}

export function decodeFrame(format: Format, data: string | Uint8Array): unknown[] {
  if (format === 'json') return decodeJsonFrame(data);
  if (typeof data === 'string') throw new Error('text frame on a MessagePack connection');
  return decodeMsgpackFrame(data);
}

export function encodeFrame(format: Format, value: unknown): string | Uint8Array {
  return format === 'json' ? JSON.stringify(value) : encodeMsgpack(value);
}

// --- publish commands read in place ------------------------------------------

/**
 * A `publish` command read in place from a JSON text frame (readPublishLine):
 * its data stays the frame's bytes, frame[dataStart..dataEnd), never parsed
 * into objects nor written out again. The caller makes its own object of
 * them (an edge: the command and who its reply goes to, in one).
 */
export type MakePublish<T> = (id: number, channel: string, frame: Uint8Array, dataStart: number, dataEnd: number, noHistory: boolean) => T;

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const KEY_ID = ascii('"id":');
const METHOD_PUBLISH = ascii('"method":"publish"');
const KEY_PARAMS = ascii('"params":{');
const KEY_CHANNEL = ascii('"channel":"');
const KEY_DATA = ascii('"data":');
const KEY_NO_HISTORY = ascii('"no_history":');
const TRUE = ascii('true');
const FALSE = ascii('false');

/** Whether b[i..] starts with `word`, within `end`. */
function startsWith(b: Uint8Array, i: number, end: number, word: Uint8Array): boolean {
  if (end - i < word.length) return false;
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word[k]) return false;
  return true;
}

const NONE = 0;
const COMMA = 1;
const CLOSE = 2;

/** What follows an object's member at b[i]: a comma (another member), the object's closing brace, or neither. */
function separatorAt(b: Uint8Array, i: number, end: number): typeof NONE | typeof COMMA | typeof CLOSE {
  if (i >= end) return NONE;
  return b[i] === 0x2c ? COMMA : b[i] === 0x7d ? CLOSE : NONE;
}

/** The last channel name read, and its bytes: a publisher's lines keep naming the same channel. */
let lastChannel = '';
let lastChannelBytes = new Uint8Array(0);

function channelAt(b: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n === lastChannelBytes.length) {
    let same = true;
    for (let k = 0; k < n; k++) {
      if (b[start + k] !== lastChannelBytes[k]) {
        same = false;
        break;
      }
    }
    if (same) return lastChannel;
  }
  lastChannelBytes = b.slice(start, end);
  lastChannel = String.fromCharCode.apply(null, lastChannelBytes as unknown as number[]);
  return lastChannel;
}

/**
 * The line b[start..end) read as a `publish` command, when it is a plain one:
 * {"id":N,"method":"publish","params":{"channel":"C","data":D,"no_history":B}}
 * with its keys in any order, each once (no_history optional), no whitespace
 * between them, the id a JSON integer of at most 15 digits, the channel
 * printable ASCII without escapes, the data any JSON value within
 * MAX_PAYLOAD_DEPTH (scanJsonValueBytes: what JSON.parse accepts) and
 * no_history true or false. Anything else is null: the caller parses the
 * line as JSON and takes the full path, whose answers (to what it refuses
 * too) stay what they were. Never reads outside [start, end).
 */
export function readPublishLine<T>(b: Uint8Array, start: number, end: number, make: MakePublish<T>): T | null {
  if (end - start < 2 || b[start] !== 0x7b) return null;
  let i = start + 1;
  let id = -1;
  let method = false;
  let params = false;
  let channel: string | null = null;
  let dataStart = -1;
  let dataEnd = -1;
  let noHistory: boolean | null = null;
  for (;;) {
    if (startsWith(b, i, end, KEY_ID)) {
      if (id >= 0) return null;
      i += KEY_ID.length;
      const first = i;
      let v = 0;
      if (b[i] === 0x30) i++;
      else {
        while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39) v = v * 10 + (b[i++]! - 0x30);
        if (i === first || i - first > 15) return null;
      }
      id = v;
    } else if (startsWith(b, i, end, METHOD_PUBLISH)) {
      if (method) return null;
      method = true;
      i += METHOD_PUBLISH.length;
    } else if (startsWith(b, i, end, KEY_PARAMS)) {
      if (params) return null;
      params = true;
      i += KEY_PARAMS.length;
      for (;;) {
        if (startsWith(b, i, end, KEY_CHANNEL)) {
          if (channel !== null) return null;
          i += KEY_CHANNEL.length;
          const from = i;
          while (i < end && b[i] !== 0x22) {
            const c = b[i]!;
            if (c < 0x20 || c > 0x7e || c === 0x5c) return null;
            i++;
          }
          if (i >= end) return null;
          channel = channelAt(b, from, i);
          i++;
        } else if (startsWith(b, i, end, KEY_DATA)) {
          if (dataStart >= 0) return null;
          i += KEY_DATA.length;
          const depth = scanJsonValueBytes(b, i, end);
          if (depth < 0 || depth > MAX_PAYLOAD_DEPTH) return null;
          dataStart = i;
          dataEnd = i = scannedBytes.end;
        } else if (startsWith(b, i, end, KEY_NO_HISTORY)) {
          if (noHistory !== null) return null;
          i += KEY_NO_HISTORY.length;
          if (startsWith(b, i, end, TRUE)) {
            noHistory = true;
            i += TRUE.length;
          } else if (startsWith(b, i, end, FALSE)) {
            noHistory = false;
            i += FALSE.length;
          } else return null;
        } else return null;
        const sep = separatorAt(b, i++, end);
        if (sep === NONE) return null;
        if (sep === CLOSE) break;
      }
    } else return null;
    const sep = separatorAt(b, i++, end);
    if (sep === NONE) return null;
    if (sep === CLOSE) break;
  }
  if (i !== end || id < 0 || !method || channel === null || dataStart < 0) return null;
  return make(id, channel, b, dataStart, dataEnd, noHistory === true);
}

/**
 * decodeJsonFrame of a text frame's bytes, except that a line that is a
 * plain `publish` command (readPublishLine) is what `make` makes of it
 * instead of its parsed object. As decodeJsonFrame, every line is read
 * before any is returned: one malformed line throws for the whole frame.
 * The items are appended to `out` (empty; a caller's array reused frame after
 * frame spares a publisher's hundreds of lines an array grown per frame), which
 * is returned; after a throw it may hold some of them.
 */
export function decodeJsonFrameReadingPublishes<T>(data: Uint8Array, make: MakePublish<T>, out: unknown[] = []): unknown[] {
  const len = data.length;
  let nl = data.indexOf(0x0a);
  if (nl === -1) {
    out.push(readPublishLine(data, 0, len, make) ?? JSON.parse(lenient.decode(data)));
    return out;
  }
  let from = 0;
  for (;;) {
    const to = nl === -1 ? len : nl;
    if (to > from) out.push(readPublishLine(data, from, to, make) ?? JSON.parse(lenient.decode(data.subarray(from, to))));
    if (nl === -1) return out;
    from = nl + 1;
    nl = data.indexOf(0x0a, from);
  }
}
