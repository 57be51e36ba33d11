/**
 * WAMP serializers and the binary rule between them.
 *
 * Inside Tidings every WAMP payload is kept in its JSON form, where a byte
 * array is a string starting with "\0" followed by its Base64 (the spec's
 * "binary support in JSON"). JSON clients send and receive that form as it
 * is. MessagePack clients send real binary values, which are turned into
 * that form when decoded, and every "\0"-string becomes binary again when
 * encoded for them. So a JSON publisher's bytes reach a MessagePack
 * subscriber as bytes, and the other way round, and native subscribers see
 * the "\0"-string. Pure: no Node imports.
 */
import { decode, encode } from '@msgpack/msgpack';
import { MAX_PAYLOAD_DEPTH, valueDepth } from '../protocol/payload.js';
import { ProtocolViolation, type Serializer } from './messages.js';

/**
 * Deepest nesting a whole WAMP message may have: the payload's own limit
 * plus the message list, the arguments list and one container level. Past
 * it the message is refused as a protocol violation before anything else
 * looks at it; within it a too-deep payload gets an ERROR (126).
 */
export const MAX_MESSAGE_DEPTH = MAX_PAYLOAD_DEPTH + 3;

const LIMIT_53 = BigInt(2 ** 53);
const utf8 = new TextDecoder('utf-8', { fatal: true });

function bytesToBase64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function base64ToBytes(s: string): Uint8Array | null {
  let bin: string;
  try {
    bin = atob(s);
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A MessagePack value in the JSON form: bytes become "\0"-strings; anything JSON cannot hold is refused. */
export function toJsonForm(value: unknown): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ProtocolViolation('numbers must be finite');
    return value;
  }
  if (typeof value === 'bigint') {
    if (value > LIMIT_53 || value < -LIMIT_53) throw new ProtocolViolation('integers must fit in 53 bits');
    return Number(value);
  }
  if (value instanceof Uint8Array) return '\0' + bytesToBase64(value);
  if (Array.isArray(value)) return value.map(toJsonForm);
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = toJsonForm(v);
    return out;
  }
  // Dates, extension types, maps with non-string keys: nothing a JSON peer could receive.
  throw new ProtocolViolation('MessagePack values must be nil, bool, numbers, strings, binary, arrays or maps with string keys');
}

/** The JSON form of a value as a MessagePack peer gets it: "\0"-strings become bytes. */
export function toMsgpackForm(value: unknown): unknown {
  if (typeof value === 'string') {
    if (value.charCodeAt(0) !== 0) return value;
    return base64ToBytes(value.slice(1)) ?? value;
  }
  if (Array.isArray(value)) return value.map(toMsgpackForm);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = toMsgpackForm(v);
    return out;
  }
  return value;
}

/** Decode one websocket message into a WAMP message in the JSON form. Throws ProtocolViolation. */
export function decodeMessage(serializer: Serializer, data: Uint8Array, isBinary: boolean): unknown {
  if (serializer === 'json') {
    if (isBinary) throw new ProtocolViolation('wamp.2.json messages must be text frames');
    let value: unknown;
    try {
      value = JSON.parse(utf8.decode(data));
    } catch (err) {
      throw new ProtocolViolation(`not JSON: ${(err as Error).message}`);
    }
    if (valueDepth(value, MAX_MESSAGE_DEPTH) > MAX_MESSAGE_DEPTH) throw new ProtocolViolation(`message nests deeper than ${MAX_MESSAGE_DEPTH} levels`);
    return value;
  }
  if (!isBinary) throw new ProtocolViolation('wamp.2.msgpack messages must be binary frames');
  let value: unknown;
  try {
    // One value per websocket message; integers past 53 bits come back as bigint and are refused.
    value = decode(data, { useBigInt64: true });
  } catch (err) {
    throw new ProtocolViolation(`not MessagePack: ${(err as Error).message}`);
  }
  if (valueDepth(value, MAX_MESSAGE_DEPTH) > MAX_MESSAGE_DEPTH) throw new ProtocolViolation(`message nests deeper than ${MAX_MESSAGE_DEPTH} levels`);
  return toJsonForm(value);
}

/** Encode a message in the JSON form for a peer: JSON text, or MessagePack with binary restored. */
export function encodeMessage(serializer: Serializer, message: unknown[]): Uint8Array | string {
  if (serializer === 'json') return JSON.stringify(message);
  return encode(toMsgpackForm(message), { ignoreUndefined: true });
}
