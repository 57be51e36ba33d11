/**
 * Websocket frames built once and written to many sockets. A server frame is
 * unmasked, so the same bytes are valid on every connection.
 */
import * as wsModule from 'ws';
import { encodeMsgpack } from '../protocol/codec.js';
import type { BatchRanges } from '../cluster/batch.js';

const TEXT = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false } as const;
const BINARY = { fin: true, rsv1: false, opcode: 2, mask: false, readOnly: false } as const;

// Sender.frame is public in ws' implementation but missing from @types/ws.
const frame = (wsModule as unknown as { Sender: { frame(data: Buffer, opts: object): Buffer[] } }).Sender.frame;

export function textFrame(payload: Buffer): Buffer {
  const parts = frame(payload, TEXT);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * A text frame of `head` + `body` (its bytes [start, end)) + `tail`, written
 * into one buffer (the frame header too): what textFrame(Buffer.concat([...]))
 * gives, without the intermediate buffers (an acknowledged publish's reply is
 * one of these).
 */
export function textFrameAround(head: string, body: Buffer, tail: string, start = 0, end = body.length): Buffer {
  const headLen = Buffer.byteLength(head);
  const tailLen = Buffer.byteLength(tail);
  const len = headLen + (end - start) + tailLen;
  const out = Buffer.allocUnsafe(frameHeaderBytes(len) + len);
  const hdr = writeTextHeader(out, len);
  let at = hdr + out.write(head, hdr, headLen, 'utf8');
  at += body.copy(out, at, start, end);
  out.write(tail, at, tailLen, 'utf8');
  return out;
}

export function binaryFrame(payload: Uint8Array): Buffer {
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const parts = frame(buf, BINARY);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** Bytes of a server frame's header for a payload of `len` bytes (unmasked). */
export function frameHeaderBytes(len: number): number {
  return len < 126 ? 2 : len < 0x10000 ? 4 : 10;
}

/** Writes an unmasked FIN text frame header for `len` payload bytes at the start of `out`; returns its size. */
function writeTextHeader(out: Buffer, len: number): number {
  out[0] = 0x81; // FIN, text
  if (len < 126) {
    out[1] = len;
    return 2;
  }
  if (len < 0x10000) {
    out[1] = 126;
    out.writeUInt16BE(len, 2);
    return 4;
  }
  out[1] = 127;
  out.writeUInt32BE(Math.floor(len / 0x100000000), 2);
  out.writeUInt32BE(len >>> 0, 6);
  return 10;
}

/**
 * What a merged text frame is made of: one push, a run of them (each line one
 * push's JSON), or a client's publish replies (reply-lines.ts).
 */
export interface LineItem {
  /** Bytes of the item's lines in a merged frame ("\n" between them). */
  readonly lineBytes: number;
  /** What an outbox counts for the item: its lines' frames as if each were sent alone. */
  readonly jsonFrameBytes: number;
  /**
   * Bytes past its lines that writeLines may write into (and leave to what follows): room for a run
   * to copy its pushes with the batch entry heads between them in one copy, then close the gaps
   * (PushRun). Absent: none.
   */
  readonly copyRoom?: number;
  /** Copy the lines to `out` at `at`; returns where they end. `out` holds at least copyRoom bytes past them. */
  writeLines(out: Buffer, at: number): number;
  /** The item alone in one text frame. */
  forJson(): Buffer;
}

/**
 * One text frame of the items `from`..`to` (exclusive), every push on its
 * own line ("\n" between them: the protocol allows it; pushes are one line
 * each, see director/push-encoding.ts), header and payload written into one
 * buffer: each push is copied once, however many pushes a socket gets in a turn.
 */
export function linesFrame(items: readonly LineItem[], from: number, to: number): Buffer {
  let len = to - from - 1;
  let room = 0;
  for (let i = from; i < to; i++) {
    const item = items[i]!;
    len += item.lineBytes;
    if (item.copyRoom !== undefined && item.copyRoom > room) room = item.copyRoom;
  }
  const size = frameHeaderBytes(len) + len;
  const out = Buffer.allocUnsafe(size + room);
  let at = writeTextHeader(out, len);
  for (let i = from; i < to; i++) {
    if (i > from) out[at++] = 0x0a;
    at = items[i]!.writeLines(out, at);
  }
  return room > 0 ? out.subarray(0, size) : out;
}

/**
 * One push as it leaves the edge: the JSON frame is built on first use, the
 * MessagePack frame only when a MessagePack client is among the receivers.
 */
export class SharedPush {
  private jsonFrame: Buffer | null = null;
  private msgpackFrame: Buffer | null = null;
  private msgpackError: Error | null = null;
  /** Connections of this user skip the push (channel events about the user). */
  exceptUser: string | null = null;
  constructor(
    readonly json: Buffer,
    /** The channel, or null for a direct message. */
    readonly channel: string | null = null,
    readonly offset = 0,
  ) {}

  /** The push alone in one text frame (a socket's outbox merges pushes of a turn instead: linesFrame). */
  forJson(): Buffer {
    return (this.jsonFrame ??= linesFrame([this], 0, 1));
  }

  /** Bytes of forJson()'s frame, without building it (what an outbox counts against its limit). */
  get jsonFrameBytes(): number {
    return frameHeaderBytes(this.json.length) + this.json.length;
  }

  /** Bytes of this push's line in a merged frame. */
  get lineBytes(): number {
    return this.json.length;
  }

  /** Copy the push's JSON to `out` at `at`; returns where it ends. */
  writeLines(out: Buffer, at: number): number {
    return at + this.json.copy(out, at);
  }

  /**
   * Throws when the push cannot be encoded (nothing past the publish doors
   * should be too deep, but if one is, it fails once per push, not once per
   * MessagePack receiver).
   */
  forMsgpack(): Buffer {
    if (this.msgpackFrame !== null) return this.msgpackFrame;
    if (this.msgpackError !== null) throw this.msgpackError;
    try {
      this.msgpackFrame = binaryFrame(encodeMsgpack(JSON.parse(this.json.toString('utf8'))));
    } catch (err) {
      this.msgpackError = err instanceof Error ? err : new Error(String(err));
      throw this.msgpackError;
    }
    return this.msgpackFrame;
  }

  /** Another shape of this push (e.g. channelstream's frame), built once by whoever needs it. */
  derived: unknown = undefined;

  /** Other protocols' shapes of this push, by protocol key; null when the push has none in that protocol. */
  private views: Map<object, unknown> | null = null;

  /** This push as `key`'s protocol shows it, built once per push (not per subscriber) by `make`. */
  view<T>(key: object, make: (push: SharedPush) => T): T {
    const views = (this.views ??= new Map());
    if (views.has(key)) return views.get(key) as T;
    const v = make(this);
    views.set(key, v);
    return v;
  }
}

/**
 * Consecutive messages of one channel from one batch of the director's, as
 * every listener of the channel gets them: a socket's outbox queues the run
 * as one item and its frame (the pushes on their own lines) is built once and
 * shared by every socket that gets just this run in a turn. So what a
 * delivery costs is paid per subscriber and batch, not per subscriber and
 * message (small rooms, issue 17). The pushes stay byte ranges of the batch;
 * a SharedPush is made for one only when a listener needs it alone (a
 * MessagePack client, another protocol, pushes held during a recovery).
 */
export class PushRun {
  private starts: ArrayLike<number> = [];
  private ends: ArrayLike<number> = [];
  offsets: ArrayLike<number> = [];
  /** Bytes of the pushes' JSON. */
  private jsonBytes = 0;
  /** What an outbox counts for the run: every push's frame as if sent alone (as it counts a SharedPush). */
  jsonFrameBytes = 0;
  private pushes: Array<SharedPush | undefined> | null = null;
  private frame: Buffer | null = null;
  /**
   * The run's lines as one buffer of their own, kept from its second writeLines on: each further
   * socket's merged frame copies them in one native copy of a whole buffer. A copy of part of a
   * buffer (each push a range of the batch body) costs a view object per push and per socket
   * (Node's Buffer#copy makes one), and sockets whose merged frames differ (some behind, some
   * not) each copy every push: at 10 subscribers that was a fifth of an edge's allocations.
   */
  private lines: Buffer | null = null;
  /** Sockets that wrote the run's lines into a merged frame so far (up to 2). */
  private linesWritten = 0;
  /**
   * Bytes the pushes' span in the body (entry heads between them) exceeds their lines by, when
   * they lie in it in order with a gap between each two (as a batch holds them): writeLines then
   * copies the span in one copy and closes the gaps in place. 0 otherwise (copied push by push).
   */
  copyRoom = 0;
  /** A push added (add) does not start after the one before ends: no span copy. */
  private outOfSpan = false;

  constructor(
    /** The batch body the pushes are ranges of. */
    private readonly body: Buffer,
    readonly channel: string,
  ) {}

  /**
   * The run of the entries `from`..`to` (exclusive) of a batch already
   * walked (ranges from a BatchRanges): copied in one slice per column
   * instead of appended one push at a time.
   */
  static of(body: Buffer, channel: string, ranges: BatchRanges, from: number, to: number): PushRun {
    const run = new PushRun(body, channel);
    run.offsets = ranges.offsets.slice(from, to);
    const starts = ranges.starts.slice(from, to);
    const ends = ranges.ends.slice(from, to);
    run.starts = starts;
    run.ends = ends;
    let json = 0;
    let headers = 0;
    for (let i = 0; i < starts.length; i++) {
      const len = ends[i]! - starts[i]!;
      json += len;
      headers += frameHeaderBytes(len);
    }
    run.jsonBytes = json;
    run.jsonFrameBytes = json + headers;
    run.copyRoom = spanRoom(starts, ends, json);
    return run;
  }

  /** Append the push at body[start, end) with its offset (before the run is delivered; runs made by `new` only). */
  add(offset: number, start: number, end: number): void {
    (this.starts as number[]).push(start);
    (this.ends as number[]).push(end);
    (this.offsets as number[]).push(offset);
    const len = end - start;
    this.jsonBytes += len;
    this.jsonFrameBytes += frameHeaderBytes(len) + len;
    const n = this.offsets.length;
    if (n > 1 && start <= (this.ends as number[])[n - 2]!) this.outOfSpan = true;
    this.copyRoom = n > 1 && !this.outOfSpan ? end - (this.starts as number[])[0]! - this.lineBytes : 0;
  }

  get count(): number {
    return this.offsets.length;
  }

  /** Push `i` alone, made once and shared by every listener that needs it so. */
  push(i: number): SharedPush {
    const pushes = (this.pushes ??= new Array<SharedPush | undefined>(this.offsets.length));
    return (pushes[i] ??= new SharedPush(this.body.subarray(this.starts[i], this.ends[i]), this.channel, this.offsets[i]));
  }

  /** The run as one text frame, one push per line (built once). */
  forJson(): Buffer {
    return (this.frame ??= linesFrame([this], 0, 1));
  }

  /** Bytes of the run's lines in a merged frame. */
  get lineBytes(): number {
    return this.jsonBytes + this.offsets.length - 1;
  }

  /** Copy the pushes' JSON to `out` at `at`, "\n" between them; returns where they end. */
  writeLines(out: Buffer, at: number): number {
    if (this.lines === null && this.frame !== null) this.lines = this.frame.subarray(this.frame.length - this.lineBytes);
    if (this.lines !== null) return at + this.lines.copy(out, at);
    const from = at;
    const n = this.offsets.length;
    const starts = this.starts;
    const ends = this.ends;
    if (this.copyRoom > 0 && n > 1 && out.length - at >= this.lineBytes + this.copyRoom) {
      // One copy of the span (a Buffer#copy of part of a buffer makes a view object: one, not one per push),
      // then each push moved down over the gap before it, "\n" in its place (every gap is at least a byte,
      // so the newline and the move never reach bytes not yet moved).
      const s0 = starts[0]!;
      this.body.copy(out, at, s0, ends[n - 1]!);
      at += ends[0]! - s0;
      for (let i = 1; i < n; i++) {
        out[at++] = 0x0a;
        const src = from + starts[i]! - s0;
        const len = ends[i]! - starts[i]!;
        out.copyWithin(at, src, src + len);
        at += len;
      }
    } else {
      for (let i = 0; i < n; i++) {
        if (i > 0) out[at++] = 0x0a;
        at += this.body.copy(out, at, starts[i], ends[i]);
      }
    }
    // A second socket: the lines are kept for the sockets after it (a run one socket gets is not copied again).
    if (++this.linesWritten === 2) {
      this.lines = Buffer.allocUnsafe(at - from);
      out.copy(this.lines, 0, from, at);
    }
    return at;
  }
}

/**
 * PushRun.copyRoom of pushes at [starts[i], ends[i]) holding `json` bytes: their span's bytes beyond
 * their lines when each starts after the one before ends (a gap of at least one byte), else 0.
 */
function spanRoom(starts: ArrayLike<number>, ends: ArrayLike<number>, json: number): number {
  const n = starts.length;
  if (n < 2) return 0;
  for (let i = 1; i < n; i++) if (starts[i]! <= ends[i - 1]!) return 0;
  return ends[n - 1]! - starts[0]! - (json + n - 1);
}
