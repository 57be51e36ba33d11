/**
 * Frame codecs for the client protocol. JSON is the default: a text frame holds
 * one JSON object, or several separated by "\n" (the server may batch; clients
 * must split). MessagePack (subprotocol tidings.v1.msgpack) frames hold one or
 * more concatenated MessagePack values.
 */
import { encode, decodeMulti } from '@msgpack/msgpack';

export type Format = 'json' | 'msgpack';

const decoder = new TextDecoder('utf-8', { fatal: true });

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
