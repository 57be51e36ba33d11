/**
 * Websocket frames built once and written to many sockets. A server frame is
 * unmasked, so the same bytes are valid on every connection.
 */
import * as wsModule from 'ws';
import { encodeMsgpack } from '../protocol/codec.js';

const TEXT = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false } as const;
const BINARY = { fin: true, rsv1: false, opcode: 2, mask: false, readOnly: false } as const;

// Sender.frame is public in ws' implementation but missing from @types/ws.
const frame = (wsModule as unknown as { Sender: { frame(data: Buffer, opts: object): Buffer[] } }).Sender.frame;

export function textFrame(payload: Buffer): Buffer {
  const parts = frame(payload, TEXT);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

export function binaryFrame(payload: Uint8Array): Buffer {
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const parts = frame(buf, BINARY);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * One push as it leaves the edge: the JSON frame is built on first use, the
 * MessagePack frame only when a MessagePack client is among the receivers.
 */
export class SharedPush {
  private jsonFrame: Buffer | null = null;
  private msgpackFrame: Buffer | null = null;
  /** Connections of this user skip the push (channel events about the user). */
  exceptUser: string | null = null;
  constructor(
    readonly json: Buffer,
    /** The channel, or null for a direct message. */
    readonly channel: string | null = null,
    readonly offset = 0,
  ) {}

  forJson(): Buffer {
    return (this.jsonFrame ??= textFrame(this.json));
  }

  forMsgpack(): Buffer {
    return (this.msgpackFrame ??= binaryFrame(encodeMsgpack(JSON.parse(this.json.toString('utf8')))));
  }

  /** Another shape of this push (e.g. channelstream's frame), built once by whoever needs it. */
  derived: unknown = undefined;
}
