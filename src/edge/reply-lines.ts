/**
 * A JSON client's publish acknowledgements of one turn, as lines of one text
 * frame: {"id":N,"result":<the director's outcome>} each, written at the flush
 * straight into the socket's buffer (merged with the pushes around them, see
 * outbox.ts). A publisher pipelining hundreds of publishes gets their replies
 * in one frame, as it gets pushes (docs/protocol.md: a frame holds one or more
 * "\n"-separated objects), instead of a frame, a buffer and a string each.
 *
 * The item grows while it is the last one queued in the connection's outbox
 * (Outbox.grow); anything queued after it (an error reply, a push) closes it,
 * so replies and pushes keep their order.
 */
import { frameHeaderBytes, linesFrame, type LineItem } from './frames.js';
import { writeDigits, digitCount } from '../cluster/batch.js';

/** `{"id":` */
const OPEN = [0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a];
/** `,"result":` */
const RESULT = [0x2c, 0x22, 0x72, 0x65, 0x73, 0x75, 0x6c, 0x74, 0x22, 0x3a];
/** Bytes of a reply line around its id's digits and its result: `{"id":` `,"result":` `}`. */
const AROUND = OPEN.length + RESULT.length + 1;

/** Most bytes of lines one item holds: a longer run of replies goes on in a new item (a frame of its own). */
export const MAX_REPLY_LINES_BYTES = 64 * 1024;

/** Most replies an item is made ready for: about as many as fit MAX_REPLY_LINES_BYTES. */
const MAX_EXPECTED = 2048;

/** Bytes of the reply line for request `id` with a result of `resultBytes` bytes. */
export function replyLineBytes(id: number, resultBytes: number): number {
  return AROUND + digitCount(id) + resultBytes;
}

export class ReplyLines implements LineItem {
  /**
   * Per reply, three numbers: its id and its result's start and end in its body. One array
   * rather than one per field: a publisher's turn of replies grows one array, not four
   * (the edge's allocations per message are most of its garbage collection, issue 17).
   * Made at the size the caller expects (a publisher's turns carry about as many replies
   * as its last), so it is not regrown reply by reply; past it, it grows.
   */
  private readonly slots: number[];
  /** Replies held. */
  private n = 0;
  /**
   * The bodies the results are ranges of, each with the number of replies up to the end of its
   * run: the replies of one director reply (a publish batch's outcomes) share one body, so
   * this holds a body per batch, not per reply.
   */
  private readonly bodies: Uint8Array[] = [];
  private readonly bodyRunEnds: number[] = [];
  /** Bytes of the lines, "\n" between them. */
  lineBytes = 0;
  /** What an outbox counts for the item: each line's frame as if sent alone (as for a run of pushes). */
  jsonFrameBytes = 0;

  /** `expected`: replies the caller expects this item to hold (a hint; 0 when unknown). */
  constructor(expected = 0) {
    this.slots = expected > 0 ? new Array<number>(3 * Math.min(expected, MAX_EXPECTED)) : [];
  }

  get count(): number {
    return this.n;
  }

  /** Whether a line of `bytes` (replyLineBytes) still fits this item. */
  fits(bytes: number): boolean {
    return this.lineBytes + 1 + bytes <= MAX_REPLY_LINES_BYTES;
  }

  /** Append the reply to `id`, its result body[start..end) (JSON text); `bytes` is its replyLineBytes (the caller counted its frame against the outbox). */
  add(id: number, body: Uint8Array, start: number, end: number, bytes: number): void {
    const n = this.n;
    const slots = this.slots;
    const at = 3 * n;
    if (at < slots.length) {
      slots[at] = id;
      slots[at + 1] = start;
      slots[at + 2] = end;
    } else slots.push(id, start, end);
    this.n = n + 1;
    const runs = this.bodies.length;
    if (runs > 0 && this.bodies[runs - 1] === body) this.bodyRunEnds[runs - 1] = n + 1;
    else {
      this.bodies.push(body);
      this.bodyRunEnds.push(n + 1);
    }
    this.lineBytes += n > 0 ? bytes + 1 : bytes;
    this.jsonFrameBytes += frameHeaderBytes(bytes) + bytes;
  }

  writeLines(out: Buffer, at: number): number {
    const slots = this.slots;
    const n = this.n;
    let run = 0;
    let body = this.bodies[0]!;
    for (let i = 0; i < n; i++) {
      if (i === this.bodyRunEnds[run]) body = this.bodies[++run]!;
      if (i > 0) out[at++] = 0x0a;
      for (let k = 0; k < OPEN.length; k++) out[at++] = OPEN[k]!;
      at = writeDigits(out, at, slots[3 * i]!);
      for (let k = 0; k < RESULT.length; k++) out[at++] = RESULT[k]!;
      let s = slots[3 * i + 1]!;
      const end = slots[3 * i + 2]!;
      // A result is a few dozen bytes ({"offset":N,"epoch":"E"}): copied here rather than through a native call.
      if (end - s <= 128) while (s < end) out[at++] = body[s++]!;
      else {
        out.set(body.subarray(s, end), at);
        at += end - s;
      }
      out[at++] = 0x7d;
    }
    return at;
  }

  /** The lines alone in one text frame (the outbox merges them with their neighbours instead when it can). */
  forJson(): Buffer {
    return linesFrame([this], 0, 1);
  }
}
