/**
 * Recovery on resubscribe: the client says the last position it saw; the
 * edge reads what it missed from the director's history up to where this
 * edge's live stream starts, while live messages are held on the connection,
 * then replays both in offset order with no gap and no duplicate.
 */
import type { StreamPosition } from '../protocol/messages.js';
import { MAX_REPLAY } from '../protocol/positions.js';
import type { CommandClient } from '../zmq/command-client.js';
import type { ClientConnection } from './connection.js';
import type { Position } from './hub.js';
import type { SubscribeOutcome } from './context.js';

interface HistoryReply {
  epoch: string;
  offset: number;
  complete: boolean;
  messages: unknown[];
}

export async function recoverInto(
  commands: CommandClient,
  conn: ClientConnection,
  channel: string,
  live: Position,
  from: StreamPosition,
): Promise<SubscribeOutcome> {
  const base = { channel, offset: live.offset, epoch: live.epoch };
  if (from.epoch !== live.epoch) {
    return { result: { ...base, recovered: false, replayed: 0 }, afterReply: () => conn.release(channel, [], live.offset) };
  }
  if (from.offset >= live.offset) {
    return { result: { ...base, recovered: true, replayed: 0 }, afterReply: () => conn.release(channel, [], from.offset) };
  }
  const wanted = live.offset - from.offset;
  const h = await commands.request<HistoryReply>('history', {
    channel,
    since: from.offset,
    until: live.offset,
    epoch: live.epoch,
    limit: Math.min(wanted, MAX_REPLAY),
  });
  const recovered = h.epoch === live.epoch && h.complete && h.messages.length === wanted;
  const replay = h.epoch === live.epoch ? h.messages.map((m) => Buffer.from(JSON.stringify(m))) : [];
  return {
    result: { ...base, recovered, replayed: replay.length },
    afterReply: () => conn.release(channel, replay, live.offset),
  };
}
