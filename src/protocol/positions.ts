/**
 * Stream positions `{offset, epoch}` as clients send them (subscribe's
 * `recover`, history's `since`), validated, and the director's history query
 * built from them. No Node imports: the client SDK shares this.
 */
import { ErrorCodes, TidingsError } from './errors.js';
import type { StreamPosition } from './messages.js';

/** Most messages one history read or one recovery replays. */
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

