/**
 * The director's channel messages leave in batches: the messages a channel
 * gets during one event-loop turn go down as one ZeroMQ message (a
 * MessageBatch, src/cluster/batch.ts) instead of one each, so the XPUB, every
 * forwarder and every edge pay one receive and one send per batch. A message
 * alone in its turn still goes as a plain Message, so light traffic looks as
 * before on the wire and pays no batching delay (the batch leaves at the end
 * of the turn that made it, via setImmediate).
 *
 * A batch holds consecutive offsets of one epoch only; anything else starts a
 * new batch. Every other frame (probes, channel events, controls) first sends
 * what is pending, so each topic keeps its order: a probe still comes down
 * behind every message sequenced before it.
 *
 * Bounds: a batch stays under maxBytes (and MAX_BATCH_ENTRIES), and pending
 * batches count against the send queue's limits, in messages and in bytes
 * (its maxBytes), so `full` and `space()` bound what waits here as the queue
 * alone did: past the byte budget a batch ends, and the next message finds
 * the queue full.
 */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { DownKind, encodeHeader } from '../cluster/wire.js';
import { DOWN_ENTRY_HEAD, MAX_BATCH_ENTRIES, downEntryBytes, encodeMessageBatch, writeDownEntryHead } from '../cluster/batch.js';
import type { SendQueue } from '../zmq/send-queue.js';
import { EndOfTurn } from '../runtime/end-of-turn.js';

interface Pending {
  topic: Buffer;
  epoch: string;
  offsets: number[];
  pushes: Buffer[];
  bytes: number;
  /**
   * While every entry so far is a framed push (see `message`) right after the
   * one before in the same slab: that slab (as a Buffer over all of it) and
   * where the run of entries starts and ends in it. The batch body is then
   * those bytes, sent uncopied; null once an entry breaks the run (the body
   * is then encoded from `pushes`, one copy, as for any other batch).
   */
  run: Buffer | null;
  runStart: number;
  runEnd: number;
}

export class DownBatcher {
  private pending = new Map<string, Pending>();
  /** Bytes of the pending batches' entries. */
  private pendingBytes = 0;
  private readonly endOfTurn = new EndOfTurn(() => this.flush());
  /** Messages sent in batches of two or more, and those batches (for tests and metrics). */
  batchedMessages = 0;
  batches = 0;

  constructor(
    private readonly queue: SendQueue,
    /** Largest batch body; a larger push goes alone. */
    private readonly maxBytes: number,
  ) {}

  /** True when the send queue and what is pending here reach the queue's limit or its byte budget. */
  get full(): boolean {
    return this.queue.length + this.pending.size >= this.queue.limit || this.overBudget;
  }

  /** The send queue's bytes and the pending batches' reach the queue's byte budget. */
  private get overBudget(): boolean {
    return this.queue.bytes + this.pendingBytes >= this.queue.maxBytes;
  }

  /** Resolves when there is room again (what is pending goes to the queue first). */
  space(): Promise<void> {
    this.flush();
    return this.queue.space();
  }

  /**
   * Queue a sequenced channel message. Throws limit_exceeded when the queue
   * is full (the message is already in the stream: edges see the hole).
   * `framed`: the DOWN_ENTRY_HEAD bytes before `push` in its memory are free
   * for this batcher to write (history slabs leave them: history.ts
   * SLAB_GAP), so a run of them goes down as the slab's bytes.
   */
  message(channel: string, topic: (channel: string) => Buffer, offset: number, epoch: string, push: Buffer, framed = false): void {
    let p = this.pending.get(channel);
    const entry = downEntryBytes(push);
    if (p && (p.epoch !== epoch || offset !== p.offsets[p.offsets.length - 1]! + 1 || p.bytes + entry > this.maxBytes || p.pushes.length >= MAX_BATCH_ENTRIES || this.overBudget || this.runEnds(p, push, framed))) {
      this.pending.delete(channel);
      this.send(p);
      p = undefined;
    }
    if (!p) {
      if (this.full) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'director send queue full');
      p = { topic: topic(channel), epoch, offsets: [], pushes: [], bytes: 0, run: null, runStart: 0, runEnd: 0 };
      if (framed) {
        p.run = Buffer.from(push.buffer as ArrayBuffer);
        p.runStart = p.runEnd = push.byteOffset - DOWN_ENTRY_HEAD;
      }
      this.pending.set(channel, p);
      this.endOfTurn.request();
    }
    if (p.run !== null) {
      if (framed && push.buffer === p.run.buffer && push.byteOffset - DOWN_ENTRY_HEAD === p.runEnd) {
        writeDownEntryHead(p.run, p.runEnd, offset, push.length);
        p.runEnd = push.byteOffset + push.length;
      } else {
        p.run = null;
      }
    }
    p.offsets.push(offset);
    p.pushes.push(push);
    p.bytes += entry;
    this.pendingBytes += entry;
  }

  /**
   * A framed push that cannot extend the pending run (its slab is a new
   * one) ends a run already half the largest batch: sent uncopied now rather
   * than copied whole with this one later.
   */
  private runEnds(p: Pending, push: Buffer, framed: boolean): boolean {
    return framed && p.run !== null && p.bytes * 2 >= this.maxBytes && (push.buffer !== p.run.buffer || push.byteOffset - DOWN_ENTRY_HEAD !== p.runEnd);
  }

  /** Any other frames: what is pending goes first. False when the queue is full or closed. */
  other(frames: Buffer[]): boolean {
    this.flush();
    return this.queue.push(frames);
  }

  /** Hand every pending batch to the send queue. */
  flush(): void {
    if (this.pending.size === 0) return;
    const all = this.pending;
    this.pending = new Map();
    for (const p of all.values()) this.send(p);
  }

  private send(p: Pending): void {
    this.pendingBytes -= p.bytes;
    const n = p.pushes.length;
    if (n > 1) {
      this.batches++;
      this.batchedMessages += n;
    }
    const frames =
      n === 1
        ? [p.topic, encodeHeader(DownKind.Message, p.offsets[0]!, p.epoch), p.pushes[0]!]
        : [p.topic, encodeHeader(DownKind.MessageBatch, p.offsets[0]!, p.epoch), p.run !== null ? p.run.subarray(p.runStart, p.runEnd) : encodeMessageBatch(p.offsets, p.pushes)];
    // Room was counted as the batch grew (`full` counts pending batches and their bytes): only a closed queue refuses.
    this.queue.push(frames, true);
  }
}
