/**
 * Splitting JSON text frames into their objects: the server may batch several
 * objects in one frame, separated by "\n" (docs/protocol.md). The same rule as
 * src/protocol/codec.ts, without its MessagePack half, so the browser bundle
 * stays free of msgpackr (about 70 kB).
 */
const decoder = new TextDecoder('utf-8', { fatal: true });

export function splitJsonFrame(data: unknown): unknown[] {
  let text: string;
  if (typeof data === 'string') text = data;
  else if (data instanceof Uint8Array) text = decoder.decode(data);
  else if (data instanceof ArrayBuffer) text = decoder.decode(new Uint8Array(data));
  else throw new Error('unexpected frame type');
  if (text.indexOf('\n') === -1) return [JSON.parse(text)];
  const out: unknown[] = [];
  for (const line of text.split('\n')) if (line.length > 0) out.push(JSON.parse(line));
  return out;
}
