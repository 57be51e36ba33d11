/**
 * Frames that travel inside the cluster.
 *
 * Downstream (director XPUB -> edges): [topic, header, body]
 *   header: 1 byte kind, 8 bytes offset (float64 BE, 0 when none), epoch (UTF-8, rest)
 *   body:   for Message/Direct, the client-facing JSON push, encoded once by the
 *           director and written unchanged to every subscriber's socket;
 *           for MessageBatch, several such pushes with their offsets (batch.ts);
 *           for Probe/Control, a JSON object for the edge.
 *
 * Batched forms of publishes, commands and replies: see batch.ts.
 *
 * Commands (DEALER -> ROUTER, through forwarders): [...route, requestId, method, json]
 * Replies: [...route, requestId, status ('ok' | 'error'), json]
 */

export const enum DownKind {
  Message = 1,
  Direct = 2,
  Probe = 3,
  Control = 4,
  /**
   * An unsequenced channel event (presence, user state, edits): delivered to
   * the channel's listeners without offset checks. The header's text part
   * names a user whose connections skip the event ('' for none).
   */
  ChannelEvent = 5,
  /** Several consecutive messages of one channel (src/cluster/batch.ts); the header's offset is the first one's. */
  MessageBatch = 6,
}

export interface DownHeader {
  kind: DownKind;
  offset: number;
  epoch: string;
}

export function encodeHeader(kind: DownKind, offset: number, epoch: string): Buffer {
  const elen = Buffer.byteLength(epoch, 'utf8');
  const buf = Buffer.allocUnsafe(9 + elen);
  buf[0] = kind;
  buf.writeDoubleBE(offset, 1);
  buf.write(epoch, 9, 'utf8');
  return buf;
}

export function decodeHeader(buf: Buffer): DownHeader | undefined {
  if (buf.length < 9) return undefined;
  const kind = buf[0] as DownKind;
  if (kind < DownKind.Message || kind > DownKind.MessageBatch) return undefined;
  return { kind, offset: buf.readDoubleBE(1), epoch: buf.toString('utf8', 9) };
}

/** Marker of the first frame of a native multipart publish. */
export const PUBLISH_MARKER = 'tidings/1';

export interface InboundPublish {
  target: 'channel' | 'user';
  name: string;
  /** The payload as JSON text. */
  data: string;
  sender: string | null;
  noHistory: boolean;
  /** Sent in the omnibus single-frame form: the sender is the data's `sender` key. */
  omnibus?: boolean;
  /** Bytes of its batch entry, when decoded from one (publishEntryBytes without measuring the strings again). */
  bytes?: number;
}

export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/**
 * Parse a message received on a publisher address: the native multipart form
 * [marker, 'channel' | 'user', name, data JSON, options JSON?] or the omnibus
 * single-frame form `channel:{"type":..,"sender":..,"payload":{..}}`.
 * Validates only the framing; names and JSON are checked by the director.
 */
export function parsePublish(frames: Buffer[]): InboundPublish {
  if (frames.length === 1) {
    const text = frames[0]!.toString('utf8');
    const colon = text.indexOf(':');
    if (colon <= 0) throw new WireError('single-frame publish must be channel:{json}');
    // omnibus puts the sender inside the message object; the director reads it after parsing.
    return { target: 'channel', name: text.slice(0, colon), data: text.slice(colon + 1), sender: null, noHistory: false, omnibus: true };
  }
  if (frames.length < 4 || frames.length > 5) throw new WireError(`multipart publish needs 4 or 5 frames, got ${frames.length}`);
  if (frames[0]!.toString('utf8') !== PUBLISH_MARKER) throw new WireError(`first frame must be "${PUBLISH_MARKER}"`);
  const target = frames[1]!.toString('utf8');
  if (target !== 'channel' && target !== 'user') throw new WireError('second frame must be "channel" or "user"');
  let sender: string | null = null;
  let noHistory = false;
  if (frames.length === 5 && frames[4]!.length > 0) {
    let opts: unknown;
    try {
      opts = JSON.parse(frames[4]!.toString('utf8'));
    } catch {
      throw new WireError('options frame is not valid JSON');
    }
    if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw new WireError('options frame must be a JSON object');
    const o = opts as Record<string, unknown>;
    if (o['sender'] !== undefined && o['sender'] !== null) {
      if (typeof o['sender'] !== 'string') throw new WireError('options.sender must be a string');
      sender = o['sender'];
    }
    if (o['no_history'] !== undefined) {
      if (typeof o['no_history'] !== 'boolean') throw new WireError('options.no_history must be a boolean');
      noHistory = o['no_history'];
    }
  }
  return { target, name: frames[2]!.toString('utf8'), data: frames[3]!.toString('utf8'), sender, noHistory, omnibus: false };
}

export function encodePublish(p: InboundPublish): Buffer[] {
  const frames = [Buffer.from(PUBLISH_MARKER), Buffer.from(p.target), Buffer.from(p.name), Buffer.from(p.data)];
  if (p.sender !== null || p.noHistory) {
    const opts: Record<string, unknown> = {};
    if (p.sender !== null) opts['sender'] = p.sender;
    if (p.noHistory) opts['no_history'] = true;
    frames.push(Buffer.from(JSON.stringify(opts)));
  }
  return frames;
}
