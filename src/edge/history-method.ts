/**
 * The client method `history {channel, since?: {offset, epoch}, limit?}` ->
 * `{channel, epoch, offset, complete, messages}`: a channel's recent messages
 * from the director, for clients whose token grants `history` on the channel.
 * Without `since`, the newest `limit` messages; with it, the messages after it.
 */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { channelProblem, grantsAllow } from '../protocol/names.js';
import type { EdgeFeature } from './features.js';
import { parseRecover } from './recovery.js';

/** Most messages one history call returns. */
export const MAX_HISTORY_LIMIT = 1000;
const DEFAULT_HISTORY_LIMIT = 50;

export const historyMethodFeature: EdgeFeature = (edge) => {
  edge.extraMethods.set('history', (conn, params) => {
    const channel = params['channel'];
    const problem = channelProblem(channel);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    if (!grantsAllow(conn.identity?.history, channel as string)) {
      throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `no history grant for ${channel as string}`);
    }
    const limit = params['limit'] ?? DEFAULT_HISTORY_LIMIT;
    if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_HISTORY_LIMIT) {
      throw new TidingsError(ErrorCodes.BAD_REQUEST, `limit must be an integer from 1 to ${MAX_HISTORY_LIMIT}`);
    }
    const since = parseRecover(params['since']);
    const body: Record<string, unknown> = { channel, limit };
    if (since) {
      body['since'] = since.offset;
      body['epoch'] = since.epoch;
    }
    return edge.commands.request('history', body);
  });
};
