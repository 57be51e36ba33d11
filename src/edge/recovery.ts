/**
 * Recovery on resubscribe: the client says the last position it saw; the
 * edge reads what it missed from the director's history up to where this
 * edge's live stream starts, while live messages are held on the connection,
 * then replays both in offset order with no gap and no duplicate.
 */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import type { StreamPosition } from '../protocol/messages.js';
import type { CommandClient } from '../zmq/command-client.js';
import type { ClientConnection } from './connection.js';
import type { Position } from './hub.js';
import type { SubscribeOutcome } from './context.js';

/** Most messages replayed on one resubscribe. */
export const MAX_REPLAY = 10_000;

export function parseRecover(value: unknown): StreamPosition | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw new TidingsError(ErrorCodes.INVALID_POSITION, 'a position must be {offset, epoch}');
  const v = value as Record<string, unknown>;
  if (typeof v['offset'] !== 'number' || !Number.isSafeInteger(v['offset']) || v['offset'] < 0) {
    throw new TidingsError(ErrorCodes.INVALID_POSITION, 'offset must be a non-negative integer');
  }
  if (typeof v['epoch'] !== 'string') throw new TidingsError(ErrorCodes.INVALID_POSITION, 'epoch must be a string');
  return { offset: v['offset'], epoch: v['epoch'] };
}

/** The director's history command body for `{channel, since?: {offset, epoch}, limit?}`. */
export function historyQuery(channel: string, params: Record<string, unknown>): Record<string, unknown> {
  const since = parseRecover(params['since']);
  const limit = params['limit'];
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_REPLAY)) {
    throw new TidingsError(ErrorCodes.BAD_REQUEST, `limit must be an integer 1..${MAX_REPLAY}`);
  }
  return { channel, limit: limit ?? 100, ...(since ? { since: since.offset, epoch: since.epoch } : {}) };
}

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
