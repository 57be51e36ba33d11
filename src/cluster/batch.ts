/**
 * Batched frames inside the cluster: several messages per ZeroMQ message, so
 * a hop costs one receive, one send and one buffer per batch instead of per
 * message (zeromq.js pays a promise, a native call and, above 128 bytes, a
 * buffer release through the main thread for every message part).
 *
 * Every batch is one binary body of length-prefixed entries; every decoder
 * checks each length against what is left and refuses (WireError, or
 * undefined downstream) a body that does not add up exactly.
 *
 * Downstream, director -> edges: [topic, header(MessageBatch, offset of the
 *   first entry, epoch), body]; body = entries of
 *   [offset float64 BE][length uint32 BE][client-facing JSON push].
 *   Each entry carries its own offset and the edge checks each one as if it
 *   had come alone: a batch cannot hide a hole.
 *
 * Upstream, workers -> publisher address: [PUBLISH_BATCH_MARKER, body]; body =
 *   entries of [target u8 ('c' | 'u')][flags u8 (1 no_history, 2 sender
 *   given)][name length u16][sender length u16][data length u32][name]
 *   [sender][data JSON text]. The same entry is the body of the `publish_text`
 *   command (an edge's publish: the data already JSON text, parsed once by
 *   the edge, taken as text by the director).
 *
 * An edge's publishes of one turn, DEALER -> ROUTER: one `publish_batch`
 *   command (alone or in a command batch) whose body is publish entries as
 *   above (channels only); each is checked and sequenced by the director as
 *   if it had come alone in a `publish_text`. Its reply (ok) is one outcome
 *   per entry, in order: [status u8 (0 ok, 1 error)][length u32][JSON], the
 *   JSON being what `publish_text` would have answered ({offset, epoch}) or
 *   refused with (an error body): one refused publish costs none of the
 *   others. An error reply to the command itself (not active, unreachable,
 *   a malformed body) answers every entry with that error. Internal to the
 *   cluster: clients see one reply per `publish` as always.
 *
 * Commands, DEALER -> ROUTER: [...route, BATCH_ID, BATCH_METHOD, body];
 *   body = entries of [request id u32][method length u8][body length u32]
 *   [method][body]. Replies to a batch: [...route, BATCH_ID, BATCH_METHOD,
 *   body]; body = entries of [request id u32][status u8 (0 ok, 1 error)]
 *   [length u32][JSON]. A request sent alone is answered alone, as before.
 */
import { DownKind, WireError, type InboundPublish } from './wire.js';

export const PUBLISH_BATCH_MARKER = 'tidings/1+batch';
const PUBLISH_BATCH_MARKER_BUF = Buffer.from(PUBLISH_BATCH_MARKER);
/** Request id of a batch: real ids run from 1. */
export const BATCH_ID = Buffer.alloc(4);
export const BATCH_METHOD = 'batch';
const BATCH_METHOD_BUF = Buffer.from(BATCH_METHOD);
/** An edge's publish with the data as JSON text (the body is one publish entry). */
export const PUBLISH_TEXT_METHOD = 'publish_text';
/** An edge's publishes of one turn (the body is publish entries, the reply one outcome per entry). */
export const PUBLISH_BATCH_METHOD = 'publish_batch';

/**
 * What one unit of zmq_high_water_mark stands for, in bytes: the batch size
 * the mark was first set for. ZeroMQ's high-water marks count ZeroMQ
 * messages, so every pipe and send queue that holds batches is bounded in
 * these units (pipeSlots, queueBytes): what it holds at its mark, in bytes,
 * stays zmq_high_water_mark x 2 KB whatever the batches' size, and back
 * pressure and zmq_block_timeout act on a stalled node or edge after as many
 * bytes as with 2 KB batches (with 64 KB batches and marks left in messages,
 * block-timeout.test.ts and loss-safeguards.test.ts fail).
 */
export const HWM_UNIT_BYTES = 2048;
/**
 * Largest batch body a sender builds, on every hop (publishes, channel
 * messages, commands, replies); a message larger than this goes alone. Large:
 * a small room's messages of one turn cross each hop in a few ZeroMQ messages
 * instead of one per 2 KB (each costs a send and a receive on every hop).
 */
export const MAX_BATCH_BYTES = 64 * 1024;
/**
 * Batches of channel messages going down (director -> forwarders -> edges):
 * larger than the other hops' batches. A busy channel fills 64 KB several
 * times in a turn, and each ZeroMQ message costs every hop it crosses a
 * receive and a send whatever its size (about 330 µs of CPU on the test
 * machine, mostly the threads' wake-ups: bench/forwarder-hop.ts). Their
 * pipes are sized in these units (downPipeSlots).
 */
export const DOWN_BATCH_BYTES = 256 * 1024;
/** Fewest ZeroMQ messages a pipe holds, whatever the mark. */
const MIN_SLOTS = 8;

/**
 * The ZeroMQ high-water mark (messages) of a socket that carries batches for
 * a configured mark of `hwm`: full MAX_BATCH_BYTES batches fill it at
 * hwm x HWM_UNIT_BYTES bytes, as full 2 KB batches filled `hwm` messages.
 */
export function pipeSlots(hwm: number): number {
  return Math.max(MIN_SLOTS, Math.ceil((hwm * HWM_UNIT_BYTES) / MAX_BATCH_BYTES));
}

/**
 * The high-water mark (messages) of a socket on the down path (the
 * director's XPUB, a forwarder's down pipes, an edge's SUB): full
 * DOWN_BATCH_BYTES batches fill it at hwm x HWM_UNIT_BYTES bytes.
 */
export function downPipeSlots(hwm: number): number {
  return Math.max(MIN_SLOTS, Math.ceil((hwm * HWM_UNIT_BYTES) / DOWN_BATCH_BYTES));
}

/** The byte budget of a send queue of batches for a configured mark of `hwm`. */
export function queueBytes(hwm: number): number {
  return hwm * HWM_UNIT_BYTES;
}
/** Most entries a sender puts in one batch. */
export const MAX_BATCH_ENTRIES = 4096;

// --- downstream message batches ---------------------------------------------

export interface BatchEntry {
  offset: number;
  push: Buffer;
}

/** Bytes before each push in a message batch: [offset float64 BE][length uint32 BE]. */
export const DOWN_ENTRY_HEAD = 12;

/** Write a message batch entry's head at `at` (its push follows). */
export function writeDownEntryHead(out: Buffer, at: number, offset: number, length: number): void {
  out.writeDoubleBE(offset, at);
  out.writeUInt32BE(length, at + 8);
}

export function downEntryBytes(push: Buffer): number {
  return DOWN_ENTRY_HEAD + push.length;
}

export function encodeMessageBatch(offsets: readonly number[], pushes: readonly Buffer[]): Buffer {
  let size = 0;
  for (const p of pushes) size += DOWN_ENTRY_HEAD + p.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < pushes.length; i++) {
    const p = pushes[i]!;
    writeDownEntryHead(out, at, offsets[i]!, p.length);
    out.set(p, at + DOWN_ENTRY_HEAD); // TypedArray#set: Buffer#copy's argument handling costs more than the copy
    at += DOWN_ENTRY_HEAD + p.length;
  }
  return out;
}

/** The entries of a batch body (pushes are views into it), or undefined when it is malformed. */
export function decodeMessageBatch(body: Buffer): BatchEntry[] | undefined {
  if (checkMessageBatch(body) === 0) return undefined;
  const out: BatchEntry[] = [];
  eachInMessageBatch(body, (offset, push) => out.push({ offset, push }));
  return out;
}

/** Entries of a well-formed batch body (offsets safe non-negative integers, lengths within it), 0 when malformed. */
export function checkMessageBatch(body: Buffer): number {
  return walkMessageBatch(body, NO_RANGES);
}

/**
 * Where the entries of a down batch are (offset, and the push's byte range
 * in the body), read once by a walk that also checks the batch (walkMessageBatch), in
 * columns reused from batch to batch: at most `capacity` entries (a larger
 * batch is walked entry by entry instead).
 */
export class BatchRanges {
  /** Entries recorded by the last walk (0 when it had more than `capacity`). */
  filled = 0;
  /** Whether the last walk's offsets each follow the one before. */
  consecutive = false;
  readonly offsets: Float64Array;
  readonly starts: Uint32Array;
  readonly ends: Uint32Array;
  constructor(readonly capacity: number) {
    this.offsets = new Float64Array(capacity);
    this.starts = new Uint32Array(capacity);
    this.ends = new Uint32Array(capacity);
  }
}

/** Records nothing: checkMessageBatch's walk. */
const NO_RANGES = new BatchRanges(0);

/**
 * Walks a message batch body once: checks it (the number of entries, 0
 * when malformed) and records where
 * each entry is in `ranges` (when they fit), noting whether the offsets are
 * consecutive (what the director sends: then the batch is delivered as one
 * run without a check per message). A DataView's reads, not Buffer's, which
 * cost a JavaScript call each while the edge's code is not yet optimised.
 */
export function walkMessageBatch(body: Buffer, ranges: BatchRanges): number {
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  const size = body.length;
  const record = ranges.capacity;
  const { offsets, starts, ends } = ranges;
  let consecutive = true;
  let prev = -1;
  let n = 0;
  let at = 0;
  ranges.filled = 0;
  while (at < size) {
    if (size - at < DOWN_ENTRY_HEAD) return 0;
    const offset = view.getFloat64(at);
    const len = view.getUint32(at + 8);
    at += DOWN_ENTRY_HEAD;
    if (len > size - at || !Number.isSafeInteger(offset) || offset < 0) return 0;
    if (n < record) {
      offsets[n] = offset;
      starts[n] = at;
      ends[n] = at + len;
    }
    if (n > 0 && offset !== prev + 1) consecutive = false;
    prev = offset;
    at += len;
    n++;
  }
  ranges.filled = n <= record ? n : 0;
  ranges.consecutive = consecutive;
  return n;
}


/** Calls `each` with every entry of a body checkMessageBatch counted (pushes are views into it). */
export function eachInMessageBatch(body: Buffer, each: (offset: number, push: Buffer) => void): void {
  let at = 0;
  while (at < body.length) {
    const offset = body.readDoubleBE(at);
    const len = body.readUInt32BE(at + 8);
    at += DOWN_ENTRY_HEAD;
    each(offset, body.subarray(at, at + len));
    at += len;
  }
}

/** As eachInMessageBatch, each push given as its byte range [start, end) of the body (no view made). */
export function eachRangeInMessageBatch(body: Buffer, each: (offset: number, start: number, end: number) => void): void {
  let at = 0;
  while (at < body.length) {
    const offset = body.readDoubleBE(at);
    const start = at + DOWN_ENTRY_HEAD;
    at = start + body.readUInt32BE(at + 8);
    each(offset, start, at);
  }
}

/**
 * The offset of a batch body's last entry, walking its length prefixes only
 * (no copies), or undefined when the body does not add up.
 */
export function lastOffsetInBatch(body: Buffer): number | undefined {
  let at = 0;
  let last: number | undefined;
  while (at < body.length) {
    if (body.length - at < DOWN_ENTRY_HEAD) return undefined;
    last = body.readDoubleBE(at);
    at += DOWN_ENTRY_HEAD + body.readUInt32BE(at + 8);
  }
  return at === body.length && last !== undefined && Number.isSafeInteger(last) ? last : undefined;
}

/** Channel messages in one downstream ZeroMQ message (for counting: benches, tests). */
export function messagesInDownFrames(frames: readonly Buffer[]): number {
  const kind = frames[1]?.[0];
  if (kind === DownKind.Message) return 1;
  if (kind !== DownKind.MessageBatch || frames.length !== 3) return 0;
  return countEntries(frames[2]!, DOWN_ENTRY_HEAD, 8);
}

/**
 * Entries of a batch body, walking its length prefixes only (no copies): for
 * counters on paths that pass batches on unopened (forwarders). 0 when the
 * body does not add up.
 */
function countEntries(body: Buffer, head: number, lengthAt: number, extra?: (at: number) => number): number {
  let n = 0;
  let at = 0;
  const end = body.length;
  while (at < end) {
    if (end - at < head) return 0;
    // Read byte by byte (the head is in range, checked above): a forwarder counts every entry it passes, and
    // Buffer#readUInt32BE's argument checks cost more than the read.
    const p = at + lengthAt;
    const len = (body[p]! * 0x1000000 + ((body[p + 1]! << 16) | (body[p + 2]! << 8) | body[p + 3]!)) + (extra ? extra(at) : 0);
    at += head + len;
    n++;
  }
  return at === end ? n : 0;
}

/** Publish entries in a body of them (a publisher's batch, a publish_batch command); 0 when it does not add up. */
function countPublishes(body: Buffer): number {
  return countEntries(body, PUB_ENTRY_HEAD, 6, (at) => ((body[at + 2]! << 8) | body[at + 3]!) + ((body[at + 4]! << 8) | body[at + 5]!));
}

/** The ZeroMQ paths a forwarder passes batches on. */
export type BatchPath = 'down' | 'up' | 'cmd' | 'reply';

/**
 * Messages (publishes, commands, replies) one ZeroMQ message on `path`
 * carries: a batch counts its entries, anything else 1.
 */
export function messagesIn(path: BatchPath, frames: readonly Buffer[]): number {
  if (path === 'down') return frames.length === 3 && frames[1]![0] === DownKind.MessageBatch ? messagesInDownFrames(frames) || 1 : 1;
  if (path === 'up') {
    return isPublishBatch(frames) ? countPublishes(frames[1]!) || 1 : 1;
  }
  const n = frames.length;
  if (n < 3) return 1;
  if (!isBatchFrames(frames[n - 3]!, frames[n - 2]!)) {
    // A publish_batch alone (plain form) carries its publishes.
    return path === 'cmd' && frames[n - 2]!.equals(PUBLISH_BATCH_METHOD_BUF) ? countPublishes(frames[n - 1]!) || 1 : 1;
  }
  const body = frames[n - 1]!;
  // Command entries name their method ([id][method length u8][length u32][method][body]); replies do not.
  return (path === 'cmd' ? countCommands(body) : countEntries(body, 9, 5)) || 1;
}

const PUBLISH_BATCH_METHOD_BUF = Buffer.from(PUBLISH_BATCH_METHOD);

/** Commands in a command batch body, a publish_batch counted as its publishes; 0 when the body does not add up. */
function countCommands(body: Buffer): number {
  let n = 0;
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 9) return 0;
    const methodLen = body[at + 4]!;
    const len = body.readUInt32BE(at + 5);
    const start = at + 9 + methodLen;
    at = start + len;
    if (at > body.length) return 0;
    n += sameBytes(body, start - methodLen, start, PUBLISH_BATCH_METHOD_BUF) ? countPublishes(body.subarray(start, at)) || 1 : 1;
  }
  return n;
}

// --- publish entries (publisher address batches, publish_text commands) ------

const PUB_ENTRY_HEAD = 10;
const FLAG_NO_HISTORY = 1;
const FLAG_SENDER = 2;
const TARGET_CHANNEL = 0x63;
const TARGET_USER = 0x75;

/** Bytes one publish takes in a batch. */
export function publishEntryBytes(p: InboundPublish): number {
  return PUB_ENTRY_HEAD + Buffer.byteLength(p.name) + (p.sender === null ? 0 : Buffer.byteLength(p.sender)) + Buffer.byteLength(p.data);
}

/** Append one publish entry to `parts` (several small buffers: joined once per batch). */
function pushPublishEntry(parts: Buffer[], p: InboundPublish): number {
  const name = Buffer.from(p.name);
  const sender = p.sender === null ? null : Buffer.from(p.sender);
  const data = Buffer.from(p.data);
  if (name.length > 0xffff || (sender && sender.length > 0xffff)) throw new WireError('name or sender longer than 65535 bytes');
  const head = Buffer.allocUnsafe(PUB_ENTRY_HEAD);
  head[0] = p.target === 'channel' ? TARGET_CHANNEL : TARGET_USER;
  head[1] = (p.noHistory ? FLAG_NO_HISTORY : 0) | (sender ? FLAG_SENDER : 0);
  head.writeUInt16BE(name.length, 2);
  head.writeUInt16BE(sender ? sender.length : 0, 4);
  head.writeUInt32BE(data.length, 6);
  parts.push(head, name);
  if (sender) parts.push(sender);
  parts.push(data);
  return PUB_ENTRY_HEAD + name.length + (sender ? sender.length : 0) + data.length;
}

/** One publish entry in a buffer of its own, written in place (an edge makes one per publish). */
export function encodePublishEntry(p: InboundPublish): Buffer {
  const nameLen = Buffer.byteLength(p.name);
  const senderLen = p.sender === null ? 0 : Buffer.byteLength(p.sender);
  const dataLen = Buffer.byteLength(p.data);
  if (nameLen > 0xffff || senderLen > 0xffff) throw new WireError('name or sender longer than 65535 bytes');
  const out = Buffer.allocUnsafe(PUB_ENTRY_HEAD + nameLen + senderLen + dataLen);
  out[0] = p.target === 'channel' ? TARGET_CHANNEL : TARGET_USER;
  out[1] = (p.noHistory ? FLAG_NO_HISTORY : 0) | (p.sender !== null ? FLAG_SENDER : 0);
  out.writeUInt16BE(nameLen, 2);
  out.writeUInt16BE(senderLen, 4);
  out.writeUInt32BE(dataLen, 6);
  let at = PUB_ENTRY_HEAD;
  at += out.write(p.name, at, nameLen, 'utf8');
  if (p.sender !== null) at += out.write(p.sender, at, senderLen, 'utf8');
  out.write(p.data, at, dataLen, 'utf8');
  return out;
}

/** A publish batch as frames for the publisher address. */
export function encodePublishBatch(list: readonly InboundPublish[]): Buffer[] {
  const parts: Buffer[] = [];
  let size = 0;
  for (const p of list) size += pushPublishEntry(parts, p);
  return [PUBLISH_BATCH_MARKER_BUF, Buffer.concat(parts, size)];
}

export function isPublishBatch(frames: readonly Buffer[]): boolean {
  return frames.length === 2 && frames[0]!.equals(PUBLISH_BATCH_MARKER_BUF);
}

/** Decode publish entries from `body`; one entry exactly when `single`. Throws WireError when malformed. */
export function decodePublishEntries(body: Buffer, single = false): InboundPublish[] {
  const r = new PublishEntryReader(body, single);
  const out: InboundPublish[] = [];
  while (r.next()) out.push(r.toPublish());
  return out;
}

/** Whether b[start..end) holds the same bytes as `same`. */
function sameBytes(b: Buffer, start: number, end: number, same: Buffer): boolean {
  if (end - start !== same.length) return false;
  for (let i = 0; i < same.length; i++) if (b[start + i] !== same[i]) return false;
  return true;
}

/**
 * The entries of a publish batch, walked in place: the body is checked whole
 * first (as decodePublishEntries checks it: a malformed batch is refused
 * before any of it is used), then `next()` moves to each entry and its
 * fields are offsets into the body: no object and no string per entry (the
 * data can stay bytes). A name or sender equal to the previous entry's is
 * the same string, decoded once (a small room's publishes repeat them).
 */
export class PublishEntryReader {
  /** Entries in the body. */
  readonly count: number;
  private at = 0;
  target = 0;
  flags = 0;
  private nameStart = 0;
  private nameEnd = 0;
  private senderStart = 0;
  private senderEnd = 0;
  dataStart = 0;
  dataEnd = 0;
  /** Bytes of the current entry (publishEntryBytes). */
  bytes = 0;
  private lastName = '';
  private lastNameBytes: Buffer | null = null;
  private lastSender = '';
  private lastSenderBytes: Buffer | null = null;

  /** Throws WireError when the body is malformed (one entry exactly when `single`). */
  constructor(
    readonly body: Buffer,
    single = false,
  ) {
    let n = 0;
    let at = 0;
    while (at < body.length) {
      if (body.length - at < PUB_ENTRY_HEAD) throw new WireError('publish entry cut short');
      const target = body[at];
      const flags = body[at + 1]!;
      const nameLen = body.readUInt16BE(at + 2);
      const senderLen = body.readUInt16BE(at + 4);
      const dataLen = body.readUInt32BE(at + 6);
      at += PUB_ENTRY_HEAD;
      if (target !== TARGET_CHANNEL && target !== TARGET_USER) throw new WireError('publish entry target must be c or u');
      if (flags & ~(FLAG_NO_HISTORY | FLAG_SENDER)) throw new WireError('unknown publish entry flags');
      if (!(flags & FLAG_SENDER) && senderLen !== 0) throw new WireError('sender length without a sender');
      if (nameLen + senderLen + dataLen > body.length - at) throw new WireError('publish entry longer than its batch');
      at += nameLen + senderLen + dataLen;
      n++;
    }
    if (n === 0) throw new WireError('empty publish batch');
    if (single && n !== 1) throw new WireError('one publish entry expected');
    this.count = n;
  }

  /** Move to the next entry; false after the last. */
  next(): boolean {
    const b = this.body;
    const at = this.at;
    if (at >= b.length) return false;
    this.target = b[at]!;
    this.flags = b[at + 1]!;
    this.nameStart = at + PUB_ENTRY_HEAD;
    this.nameEnd = this.nameStart + ((b[at + 2]! << 8) | b[at + 3]!);
    this.senderStart = this.nameEnd;
    this.senderEnd = this.senderStart + ((b[at + 4]! << 8) | b[at + 5]!);
    this.dataStart = this.senderEnd;
    this.dataEnd = this.dataStart + b.readUInt32BE(at + 6);
    this.bytes = this.dataEnd - at;
    this.at = this.dataEnd;
    return true;
  }

  get isChannel(): boolean {
    return this.target === TARGET_CHANNEL;
  }

  get noHistory(): boolean {
    return (this.flags & FLAG_NO_HISTORY) !== 0;
  }

  /** The channel or user name. */
  name(): string {
    const b = this.body;
    if (this.lastNameBytes === null || !sameBytes(b, this.nameStart, this.nameEnd, this.lastNameBytes)) {
      this.lastName = b.toString('utf8', this.nameStart, this.nameEnd);
      this.lastNameBytes = Buffer.from(b.subarray(this.nameStart, this.nameEnd));
    }
    return this.lastName;
  }

  sender(): string | null {
    if (!(this.flags & FLAG_SENDER)) return null;
    const b = this.body;
    if (this.lastSenderBytes === null || !sameBytes(b, this.senderStart, this.senderEnd, this.lastSenderBytes)) {
      this.lastSender = b.toString('utf8', this.senderStart, this.senderEnd);
      this.lastSenderBytes = Buffer.from(b.subarray(this.senderStart, this.senderEnd));
    }
    return this.lastSender;
  }

  /** The data as text (Node's decoder: bytes that are not UTF-8 become U+FFFD). */
  data(): string {
    return this.body.toString('utf8', this.dataStart, this.dataEnd);
  }

  /** The current entry as an object (the paths that take publishes as text). */
  toPublish(): InboundPublish {
    return { target: this.isChannel ? 'channel' : 'user', name: this.name(), data: this.data(), sender: this.sender(), noHistory: this.noHistory, omnibus: false, bytes: this.bytes };
  }
}

/** A buffer written from its start that doubles when it runs out of room (the writers below). */
class GrowingBuffer {
  protected buf: Buffer;
  protected at = 0;

  constructor(initialBytes: number) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Room for `bytes` more after `at`. */
  protected room(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + bytes));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }
}

/**
 * Publish entries to channels written one after another into one buffer (an
 * edge's publishes of a turn, a `publish_batch` body): no buffer per entry; a
 * name or sender equal to the previous entry's is copied as bytes, not
 * encoded again. `take()` hands the entries over and starts again.
 */
export class PublishEntryWriter extends GrowingBuffer {
  /** Entries written since the last take(). */
  count = 0;
  private lastName = '';
  private lastNameBytes = Buffer.alloc(0);
  private lastSender: string | null = null;
  private lastSenderBytes = Buffer.alloc(0);

  constructor(initialBytes = 16 * 1024) {
    super(initialBytes);
  }

  /** Bytes written since the last take(). */
  get bytes(): number {
    return this.at;
  }

  /**
   * Append a publish to channel `name` with `data` as JSON text; returns the
   * entry's bytes. Throws WireError (nothing written) for a name or sender
   * over 65535 bytes.
   */
  addText(name: string, sender: string | null, noHistory: boolean, data: string): number {
    const start = this.head(name, sender, noHistory, data.length * 3);
    const dataLen = this.buf.write(data, this.at, 'utf8');
    return this.finish(start, dataLen);
  }

  /** As addText, the data given as bytes (JSON text as UTF-8): copied as they are. */
  addBytes(name: string, sender: string | null, noHistory: boolean, src: Uint8Array, start: number, end: number): number {
    const entry = this.head(name, sender, noHistory, end - start);
    this.buf.set(src.subarray(start, end), this.at);
    return this.finish(entry, end - start);
  }

  /** Writes an entry's head, name and sender, with room for `dataRoom` bytes of data after them; returns the entry's start. */
  private head(name: string, sender: string | null, noHistory: boolean, dataRoom: number): number {
    if (name !== this.lastName || this.lastNameBytes.length === 0) {
      const bytes = Buffer.from(name);
      if (bytes.length > 0xffff) throw new WireError('name or sender longer than 65535 bytes');
      this.lastName = name;
      this.lastNameBytes = bytes;
    }
    if (sender !== null && sender !== this.lastSender) {
      const bytes = Buffer.from(sender);
      if (bytes.length > 0xffff) throw new WireError('name or sender longer than 65535 bytes');
      this.lastSender = sender;
      this.lastSenderBytes = bytes;
    }
    const nameBytes = this.lastNameBytes;
    const senderLen = sender === null ? 0 : this.lastSenderBytes.length;
    this.room(PUB_ENTRY_HEAD + nameBytes.length + senderLen + dataRoom);
    const b = this.buf;
    const start = this.at;
    b[start] = TARGET_CHANNEL;
    b[start + 1] = (noHistory ? FLAG_NO_HISTORY : 0) | (sender !== null ? FLAG_SENDER : 0);
    b[start + 2] = nameBytes.length >>> 8;
    b[start + 3] = nameBytes.length & 0xff;
    b[start + 4] = senderLen >>> 8;
    b[start + 5] = senderLen & 0xff;
    let at = start + PUB_ENTRY_HEAD;
    b.set(nameBytes, at);
    at += nameBytes.length;
    if (sender !== null) {
      b.set(this.lastSenderBytes, at);
      at += senderLen;
    }
    this.at = at;
    return start;
  }

  /** Forget what was written after the first `bytes` (the last entry, just written: see take()). */
  dropLast(bytes: number): void {
    this.at = bytes;
    this.count--;
  }

  private finish(start: number, dataLen: number): number {
    this.buf.writeUInt32BE(dataLen, start + 6);
    this.at += dataLen;
    this.count++;
    return this.at - start;
  }

  /** The entries written (a buffer of their own) and a fresh start; the scratch memory is kept up to 64 KB. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.at);
    this.buf.copy(out, 0, 0, this.at);
    this.at = 0;
    this.count = 0;
    if (this.buf.length > MAX_BATCH_BYTES * 2) this.buf = Buffer.allocUnsafe(MAX_BATCH_BYTES);
    return out;
  }
}

/** Decimal digits of `n` (a safe non-negative integer). */
export function digitCount(n: number): number {
  let digits = 1;
  for (let v = n; v >= 10; v = Math.floor(v / 10)) digits++;
  return digits;
}

/** Writes the decimal digits of `n` (a safe non-negative integer) at `at`; returns where they end. No string made. */
export function writeDigits(b: Uint8Array, at: number, n: number): number {
  const digits = digitCount(n);
  let i = at + digits;
  for (let v = n; ; v = Math.floor(v / 10)) {
    b[--i] = 0x30 + (v % 10);
    if (v < 10) break;
  }
  return at + digits;
}

/** Bytes before each outcome of a publish_batch reply: [status u8][length u32]. */
const OUTCOME_HEAD = 5;
const OFFSET_OPEN = Buffer.from('{"offset":');

/**
 * A publish_batch reply written outcome by outcome into one buffer. An
 * accepted entry's outcome is `{"offset":N,"epoch":"E"}` (what publish_text
 * answers: JSON.stringify({offset, epoch})), written from cached pieces.
 */
export class PublishOutcomeWriter extends GrowingBuffer {
  private epoch = '';
  private epochTail = Buffer.alloc(0);

  constructor(entries: number) {
    super(entries * 64);
  }

  ok(offset: number, epoch: string): void {
    if (epoch !== this.epoch || this.epochTail.length === 0) {
      this.epoch = epoch;
      this.epochTail = Buffer.from(`,"epoch":${JSON.stringify(epoch)}}`);
    }
    this.room(OUTCOME_HEAD + OFFSET_OPEN.length + 24 + this.epochTail.length);
    const b = this.buf;
    const start = this.at;
    b[start] = 0;
    let at = start + OUTCOME_HEAD;
    b.set(OFFSET_OPEN, at);
    at += OFFSET_OPEN.length;
    at = writeDigits(b, at, offset);
    b.set(this.epochTail, at);
    at += this.epochTail.length;
    b.writeUInt32BE(at - start - OUTCOME_HEAD, start + 1);
    this.at = at;
  }

  /** A refused entry: its error body (JSON). */
  error(body: Buffer): void {
    this.room(OUTCOME_HEAD + body.length);
    const b = this.buf;
    b[this.at] = 1;
    b.writeUInt32BE(body.length, this.at + 1);
    b.set(body, this.at + OUTCOME_HEAD);
    this.at += OUTCOME_HEAD + body.length;
  }

  /** The reply body (a view of the written bytes). */
  finish(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

/**
 * Calls `each` with every outcome of a publish_batch reply (its JSON as the
 * byte range [start, end) of `body`), after checking the body holds exactly
 * `count` of them; false (and no call) when it does not.
 */
export function eachPublishOutcome(body: Buffer, count: number, each: (i: number, ok: boolean, start: number, end: number) => void): boolean {
  let n = 0;
  let at = 0;
  while (at < body.length) {
    if (body.length - at < OUTCOME_HEAD || (body[at] !== 0 && body[at] !== 1)) return false;
    const len = body.readUInt32BE(at + 1);
    if (len > body.length - at - OUTCOME_HEAD) return false;
    at += OUTCOME_HEAD + len;
    n++;
  }
  if (n !== count) return false;
  at = 0;
  for (let i = 0; i < count; i++) {
    const start = at + OUTCOME_HEAD;
    const end = start + body.readUInt32BE(at + 1);
    each(i, body[at] === 0, start, end);
    at = end;
  }
  return true;
}

// --- command and reply batches ------------------------------------------------

export interface CommandEntry {
  id: number;
  method: string;
  body: Buffer;
}

export interface ReplyEntry {
  id: number;
  ok: boolean;
  body: Buffer;
}

export function isBatchFrames(id: Buffer, method: Buffer): boolean {
  return id.length === 4 && id.readUInt32BE(0) === 0 && method.equals(BATCH_METHOD_BUF);
}

export function encodeCommandBatch(entries: readonly CommandEntry[]): Buffer[] {
  // Written in place into one buffer: no small buffers per entry (an edge's publishes are commands).
  let size = 0;
  for (const e of entries) {
    const methodLen = Buffer.byteLength(e.method);
    if (methodLen > 0xff) throw new WireError('method name longer than 255 bytes');
    size += 9 + methodLen + e.body.length;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const e of entries) {
    out.writeUInt32BE(e.id, at);
    const methodLen = out.write(e.method, at + 9, 'utf8');
    out[at + 4] = methodLen;
    out.writeUInt32BE(e.body.length, at + 5);
    at += 9 + methodLen;
    e.body.copy(out, at);
    at += e.body.length;
  }
  return [BATCH_ID, BATCH_METHOD_BUF, out];
}

export function decodeCommandBatch(body: Buffer): CommandEntry[] {
  const out: CommandEntry[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 9) throw new WireError('command entry cut short');
    const id = body.readUInt32BE(at);
    const methodLen = body[at + 4]!;
    const len = body.readUInt32BE(at + 5);
    at += 9;
    if (methodLen + len > body.length - at) throw new WireError('command entry longer than its batch');
    if (id === 0) throw new WireError('command entry without an id');
    const method = body.toString('utf8', at, at + methodLen);
    at += methodLen;
    out.push({ id, method, body: body.subarray(at, at + len) });
    at += len;
  }
  if (out.length === 0) throw new WireError('empty command batch');
  return out;
}

export function encodeReplyBatch(entries: readonly ReplyEntry[]): Buffer[] {
  let size = 0;
  for (const e of entries) size += 9 + e.body.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const e of entries) {
    out.writeUInt32BE(e.id, at);
    out[at + 4] = e.ok ? 0 : 1;
    out.writeUInt32BE(e.body.length, at + 5);
    e.body.copy(out, at + 9);
    at += 9 + e.body.length;
  }
  return [BATCH_ID, BATCH_METHOD_BUF, out];
}

/** The replies of a batch, or undefined when the body is malformed. */
export function decodeReplyBatch(body: Buffer): ReplyEntry[] | undefined {
  const out: ReplyEntry[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 9) return undefined;
    const id = body.readUInt32BE(at);
    const status = body[at + 4];
    const len = body.readUInt32BE(at + 5);
    at += 9;
    if (len > body.length - at || (status !== 0 && status !== 1)) return undefined;
    out.push({ id, ok: status === 0, body: body.subarray(at, at + len) });
    at += len;
  }
  return out.length > 0 ? out : undefined;
}
