/**
 * The director's ticks and the shed markers, on the broadcast topic to every
 * edge (a control message). Apart from wire.ts because a marker names a
 * batch's last offset, and batches are built on wire.ts.
 */
import { ALL_TOPIC, TopicKind, parseTopic } from './topics.js';
import { DownKind, decodeHeader, encodeHeader } from './wire.js';
import { lastOffsetInBatch } from './batch.js';

/**
 * The director's tick: a control message to every edge each second,
 * numbered within the director's run in the order it is sent. A hop that
 * sends on without a full peer (zmq_block_timeout) drops whatever it sends
 * for that peer until the peer has read its backlog down, and libzmq does not
 * say when that is. So right after each message sent without full peers the
 * hop sends a tick out of turn, also without them (SendQueue's `markShed`):
 * - a peer still full misses it, and the next tick it gets skips a number:
 *   the edge probes its channels (a hole at the end of a stream shows with no
 *   later message);
 * - a peer that read its backlog down meanwhile gets it; it missed at most the
 *   message shed just before, which the tick names (`missed`: channel,
 *   offset, epoch) so the edge compares it with its own position.
 * Peers that keep up get every tick, numbers in a row: they check nothing.
 */
export const TICK_OP = 'tick';
export const TICK_INTERVAL_MS = 1000;

/** A channel position some peers may have missed: a shed message or probe. */
export interface MissedPosition {
  channel: string;
  offset: number;
  epoch: string;
}

export interface Tick {
  run: string;
  seq: number;
  missed?: MissedPosition;
}

export function tickFrames(run: string, seq: number, missed?: MissedPosition): Buffer[] {
  const body: Record<string, unknown> = { op: TICK_OP, run, seq };
  if (missed) body['missed'] = missed;
  return [ALL_TOPIC, encodeHeader(DownKind.Control, 0, ''), Buffer.from(JSON.stringify(body))];
}

/** A tick's fields from a control message's parsed body, or null if it is not a well-formed tick. */
export function tickOf(control: Record<string, unknown>): Tick | null {
  const { op, run, seq, missed } = control;
  if (op !== TICK_OP || typeof run !== 'string' || typeof seq !== 'number' || !Number.isSafeInteger(seq)) return null;
  const m = missed as Partial<MissedPosition> | undefined;
  if (m && typeof m === 'object' && typeof m.channel === 'string' && typeof m.offset === 'number' && typeof m.epoch === 'string') {
    return { run, seq, missed: { channel: m.channel, offset: m.offset, epoch: m.epoch } };
  }
  return { run, seq };
}

/**
 * The channel position a downstream message carries (a channel message, batch
 * or probe), if any. A batch names its last entry's offset: a peer that missed
 * the batch stands below its first, one that got it at the last or past it,
 * and an edge that finds the hole goes on from there as after a lone message
 * (only the header's first offset, if the body does not add up).
 */
export function positionIn(frames: Buffer[]): MissedPosition | undefined {
  if (frames.length !== 3) return undefined;
  const header = decodeHeader(frames[1]!);
  if (!header || (header.kind !== DownKind.Message && header.kind !== DownKind.MessageBatch && header.kind !== DownKind.Probe)) return undefined;
  const topic = parseTopic(frames[0]!);
  if (!topic || topic.kind !== TopicKind.Channel) return undefined;
  const offset = header.kind === DownKind.MessageBatch ? (lastOffsetInBatch(frames[2]!) ?? header.offset) : header.offset;
  return { channel: topic.name, offset, epoch: header.epoch };
}
