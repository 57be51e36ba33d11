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
import { MAX_BATCH_ENTRIES, downEntryBytes, encodeMessageBatch } from '../cluster/batch.js';
import type { SendQueue } from '../zmq/send-queue.js';
import { EndOfTurn } from '../runtime/end-of-turn.js';

interface Pending {
  topic: Buffer;
  epoch: string;
  offsets: number[];
  pushes: Buffer[];
  bytes: number;
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
   */
  message(channel: string, topic: () => Buffer, offset: number, epoch: string, push: Buffer): void {
    let p = this.pending.get(channel);
    const entry = downEntryBytes(push);
    if (p && (p.epoch !== epoch || offset !== p.offsets[p.offsets.length - 1]! + 1 || p.bytes + entry > this.maxBytes || p.pushes.length >= MAX_BATCH_ENTRIES || this.overBudget)) {
      this.pending.delete(channel);
      this.send(p);
      p = undefined;
    }
    if (!p) {
      if (this.full) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'director send queue full');
      p = { topic: topic(), epoch, offsets: [], pushes: [], bytes: 0 };
      this.pending.set(channel, p);
      this.endOfTurn.request();
    }
    p.offsets.push(offset);
    p.pushes.push(push);
    p.bytes += entry;
    this.pendingBytes += entry;
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
        : [p.topic, encodeHeader(DownKind.MessageBatch, p.offsets[0]!, p.epoch), encodeMessageBatch(p.offsets, p.pushes)];
    // Room was counted as the batch grew (`full` counts pending batches and their bytes): only a closed queue refuses.
    this.queue.push(frames, true);
  }
}
