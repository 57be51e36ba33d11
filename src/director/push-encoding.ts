/**
 * Builds the client-facing JSON of a push once per message; edges write these
 * bytes unchanged to every subscriber. `data` is JSON text already validated;
 * raw newlines in valid JSON can only be insignificant whitespace, so they are
 * blanked to keep the one-object-per-line batching of the protocol intact.
 */

function oneLine(json: string): string {
  return json.indexOf('\n') === -1 && json.indexOf('\r') === -1 ? json : json.replace(/[\r\n]/g, ' ');
}

/** A channel message's push up to its offset: `{"type":"message","channel":<channel>,"offset":`. */
function messagePushHead(channel: string): string {
  return `{"type":"message","channel":${JSON.stringify(channel)},"offset":`;
}

/** The last channel's push head: a director sequences runs of one channel's publishes (one JSON.stringify per run). */
let lastChannel: string | null = null;
let lastHead = '';

/** The push of a channel message around its offset and epoch (the engines put `<offset>,"epoch":"<epoch>"` between). */
export function messagePushParts(channel: string, sender: string | null, time: number, dataJson: string): { head: string; tail: string } {
  if (channel !== lastChannel) {
    lastHead = messagePushHead(channel);
    lastChannel = channel;
  }
  return {
    head: lastHead,
    tail: `,"sender":${sender === null ? 'null' : JSON.stringify(sender)},"time":${time},"data":${oneLine(dataJson)}}`,
  };
}

/** Put the offset and epoch between a push's head and tail (the redis engine's Lua does the same). */
export function assemblePush(head: string, offset: number, epoch: string, tail: string): string {
  return `${head}${offset},"epoch":"${epoch}"${tail}`;
}

export function encodeMessagePush(
  channel: string,
  offset: number,
  epoch: string,
  sender: string | null,
  time: number,
  dataJson: string,
): Buffer {
  const { head, tail } = messagePushParts(channel, sender, time, dataJson);
  return Buffer.from(assemblePush(head, offset, epoch, tail), 'utf8');
}

export function encodeDirectPush(user: string, sender: string | null, time: number, dataJson: string): Buffer {
  return Buffer.from(
    `{"type":"direct","user":${JSON.stringify(user)},"sender":${
      sender === null ? 'null' : JSON.stringify(sender)
    },"time":${time},"data":${oneLine(dataJson)}}`,
    'utf8',
  );
}

const EMPTY = Buffer.alloc(0);
const CLOSE = 0x7d; // }

/** Decimal digits of a non-negative safe integer. */
function digitCount(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/**
 * A channel message's push written as bytes, without building its text: the
 * same bytes as `Buffer.from(assemblePush(head, offset, epoch, tail))` for
 * messagePushParts(channel, sender, time, data) when `data` is the UTF-8
 * text of the data bytes (unit/push-bytes.test.ts). The pieces around the
 * offset and the data are encoded once per channel and per (epoch, sender,
 * time) and reused: a small room's run of publishes encodes only its offset
 * and copies its data. The data bytes must be JSON (scanJsonBytes); their raw
 * CR and LF are blanked as oneLine() blanks them.
 */
export class MessagePushBytes {
  private channel: string | null = null;
  /** `{"type":"message","channel":<channel>,"offset":` */
  private head: Buffer = EMPTY;
  /** The epoch `mid` was made for. */
  private midEpoch: string | null = null;
  private sender: string | null | undefined = undefined;
  private time = -1;
  /** `,"epoch":"<epoch>","sender":<sender>,"time":<time>,"data":` */
  private mid: Buffer = EMPTY;
  private data: Uint8Array = EMPTY;
  private dataStart = 0;
  private dataEnd = 0;
  private lineBreak = false;
  /** Decimal digits of `offset`. */
  private digits = 1;
  /** Set by `place`: where the push stands in its stream, and its size in bytes. */
  offset = 0;
  epoch = '';
  /** Set by the history that stored it (history.ts storeBytes): SLAB_GAP free bytes precede the push. */
  framed = false;
  size = 0;

  /** The message: its channel, sender, time and data (data[start..end), JSON; lineBreak: it has a raw CR or LF). */
  message(channel: string, sender: string | null, time: number, data: Uint8Array, start: number, end: number, lineBreak: boolean): void {
    if (channel !== this.channel) {
      this.head = Buffer.from(messagePushHead(channel));
      this.channel = channel;
    }
    if (sender !== this.sender || time !== this.time) {
      this.sender = sender;
      this.time = time;
      this.midEpoch = null; // mid is made again in place()
    }
    this.data = data;
    this.dataStart = start;
    this.dataEnd = end;
    this.lineBreak = lineBreak;
  }

  /** Its position in the stream; sets `size`. */
  place(offset: number, epoch: string): void {
    if (epoch !== this.midEpoch) {
      const sender = this.sender === null || this.sender === undefined ? 'null' : JSON.stringify(this.sender);
      this.mid = Buffer.from(`,"epoch":"${epoch}","sender":${sender},"time":${this.time},"data":`);
      this.midEpoch = epoch;
    }
    this.offset = offset;
    this.epoch = epoch;
    this.digits = digitCount(offset);
    this.size = this.head.length + this.digits + this.mid.length + (this.dataEnd - this.dataStart) + 1;
  }

  /** The placed push in a buffer of its own (not kept in history: no free bytes before it). */
  alone(): Buffer {
    const out = Buffer.allocUnsafe(this.size);
    this.writeTo(out, 0);
    this.framed = false;
    return out;
  }

  /** Write the placed push into out[at .. at + size). */
  writeTo(out: Uint8Array, at: number): void {
    out.set(this.head, at);
    at += this.head.length;
    const digits = this.digits;
    let n = this.offset;
    for (let k = at + digits - 1; k >= at; k--) {
      out[k] = 0x30 + (n % 10);
      n = Math.floor(n / 10);
    }
    at += digits;
    out.set(this.mid, at);
    at += this.mid.length;
    const data = this.data;
    const start = this.dataStart;
    const end = this.dataEnd;
    // A plain view (a Buffer's subarray costs more to make), copied natively.
    out.set(new Uint8Array(data.buffer, data.byteOffset + start, end - start), at);
    at += end - start;
    if (this.lineBreak) {
      for (let k = at - (end - start); k < at; k++) if (out[k] === 0x0a || out[k] === 0x0d) out[k] = 0x20;
    }
    out[at] = CLOSE;
  }
}
