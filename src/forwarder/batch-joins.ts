/**
 * Which batches a forwarder may pass on joined as one ZeroMQ message, and
 * the joined message (see TurnMerger). A joined message says exactly what its
 * parts said, in their order, so the receiver (the director, an edge) checks
 * and takes it entry by entry as it would have taken them one by one.
 *
 * Up: publish batches ([PUBLISH_BATCH_MARKER, body]) whose body the director
 * takes whole (checkPublishBatch): a body it would refuse goes alone, so it
 * costs no other publisher its batch. At most `maxBytes` (what every node's
 * publisher address takes: MAX_BATCH_BYTES) and MAX_BATCH_ENTRIES.
 *
 * Down: channel messages (Message, or a well-formed MessageBatch whose
 * header names its first entry's offset) of one
 * topic and epoch whose offsets follow on from the run's last: joined into
 * one MessageBatch, at most DOWN_BATCH_BYTES (the down pipes' unit) and
 * MAX_BATCH_ENTRIES. Everything else (probes, ticks, channel events) goes
 * alone, after the run before it.
 */
import { DownKind } from '../cluster/wire.js';
import { DOWN_ENTRY_HEAD, MAX_BATCH_ENTRIES, PUBLISH_BATCH_MARKER, checkMessageBatch, checkPublishBatch, isPublishBatch, lastOffsetInBatch, writeDownEntryHead } from '../cluster/batch.js';

/** A run of messages that may leave as one. */
export interface Run {
  readonly messages: Buffer[][];
  bytes: number;
  entries: number;
}

export interface Joiner<R extends Run> {
  /** The run `msg` starts, or null when it must go alone. */
  start(msg: Buffer[]): R | null;
  /** Add `msg` to `run` when it may follow there (true), else leave the run as it is (false). */
  extend(run: R, msg: Buffer[]): boolean;
  /** The one message that carries a run of two or more. */
  join(run: R): Buffer[];
}

const MARKER = Buffer.from(PUBLISH_BATCH_MARKER);

export function publishJoiner(maxBytes: number): Joiner<Run> {
  const admit = (msg: Buffer[]): number => (isPublishBatch(msg) && msg[1]!.length <= maxBytes ? checkPublishBatch(msg[1]!) : 0);
  return {
    start(msg) {
      const n = admit(msg);
      return n > 0 ? { messages: [msg], bytes: msg[1]!.length, entries: n } : null;
    },
    extend(run, msg) {
      const n = admit(msg);
      if (n === 0 || run.bytes + msg[1]!.length > maxBytes || run.entries + n > MAX_BATCH_ENTRIES) return false;
      run.messages.push(msg);
      run.bytes += msg[1]!.length;
      run.entries += n;
      return true;
    },
    join(run) {
      return [MARKER, Buffer.concat(run.messages.map((m) => m[1]!), run.bytes)];
    },
  };
}

interface DownRun extends Run {
  topic: Buffer;
  /** The first message's header: its epoch bytes are every part's. */
  header: Buffer;
  last: number;
}

/** A channel message's [first offset, last offset, entries, body bytes as batch entries], or null. */
function channelPart(msg: Buffer[]): [number, number, number, number] | null {
  if (msg.length !== 3 || msg[1]!.length < 9) return null;
  const kind = msg[1]![0];
  const first = msg[1]!.readDoubleBE(1);
  if (!Number.isSafeInteger(first)) return null;
  if (kind === DownKind.Message) return [first, first, 1, DOWN_ENTRY_HEAD + msg[2]!.length];
  if (kind !== DownKind.MessageBatch) return null;
  // Joined only when it is what the director makes: well-formed, the header naming the first entry's offset.
  const n = checkMessageBatch(msg[2]!);
  const last = n > 0 && msg[2]!.readDoubleBE(0) === first ? lastOffsetInBatch(msg[2]!) : undefined;
  return last === undefined ? null : [first, last, n, msg[2]!.length];
}

/** Whether two headers name the same epoch (the bytes after kind and offset). */
function sameEpoch(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.compare(b, 9, b.length, 9, a.length) === 0;
}

export function channelJoiner(maxBytes: number): Joiner<DownRun> {
  return {
    start(msg) {
      const part = channelPart(msg);
      if (!part || part[3] > maxBytes) return null;
      return { messages: [msg], bytes: part[3], entries: part[2], topic: msg[0]!, header: msg[1]!, last: part[1] };
    },
    extend(run, msg) {
      const part = channelPart(msg);
      if (!part || part[0] !== run.last + 1 || run.bytes + part[3] > maxBytes || run.entries + part[2] > MAX_BATCH_ENTRIES) return false;
      if (!msg[0]!.equals(run.topic) || !sameEpoch(msg[1]!, run.header)) return false;
      run.messages.push(msg);
      run.bytes += part[3];
      run.entries += part[2];
      run.last = part[1];
      return true;
    },
    join(run) {
      const body = Buffer.allocUnsafe(run.bytes);
      let at = 0;
      for (const m of run.messages) {
        if (m[1]![0] === DownKind.Message) {
          writeDownEntryHead(body, at, m[1]!.readDoubleBE(1), m[2]!.length);
          body.set(m[2]!, at + DOWN_ENTRY_HEAD);
          at += DOWN_ENTRY_HEAD + m[2]!.length;
        } else {
          body.set(m[2]!, at);
          at += m[2]!.length;
        }
      }
      const header = Buffer.from(run.header);
      header[0] = DownKind.MessageBatch;
      return [run.topic, header, body];
    },
  };
}
