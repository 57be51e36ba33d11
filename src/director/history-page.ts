/**
 * The director's answer to a `history` command: one page of a channel's
 * history (history.ts) with where the channel stands. Pushes are never parsed
 * here: inline, they are spliced into the JSON text of the reply; `raw`, they
 * travel as extra frames of the reply with their offsets in the body, and the
 * edge writes them to clients as they are.
 */
import type { ChannelState } from './channels.js';
import { EncodedReply } from './encoded-reply.js';

/** Bytes of pushes in a page when the caller names none. */
export const HISTORY_PAGE_BYTES = 1024 * 1024;
/** The most a caller may ask for in one page (a single larger message still comes alone). */
export const MAX_HISTORY_PAGE_BYTES = 4 * 1024 * 1024;

export interface PageQuery {
  channel: string;
  since?: number;
  until?: number;
  limit: number;
  maxBytes: number;
  /** The epoch the caller's `since` belongs to; another one gets no messages. */
  epoch: string | null;
  /** Pushes as extra frames (with `offsets` in the body) instead of inside `messages`. */
  raw: boolean;
  now: number;
}

const COMMA = Buffer.from(',');

/**
 * {channel, epoch, offset, complete, more, available, messages | offsets}:
 * `complete` says history reaches back to `since` in this epoch with nothing
 * expired between; `more` that the page stopped at the byte bound before
 * `limit` messages (ask again from the last offset); `available` how many
 * messages the whole range holds (at most `limit`).
 */
export function historyPage(state: ChannelState, q: PageQuery): EncodedReply {
  const sameEpoch = q.epoch === null || q.epoch === state.epoch;
  const page = sameEpoch
    ? state.history.read({ since: q.since, until: q.until, limit: q.limit, maxBytes: q.maxBytes }, q.now)
    : { entries: [], more: false, available: 0 };
  const complete = q.since === undefined ? true : sameEpoch && state.coversSince(q.since);
  const head = { channel: q.channel, epoch: state.epoch, offset: state.offset, complete, more: page.more, available: page.available };
  const pushes = page.entries.map((e) => e.push);
  if (q.raw) return new EncodedReply(Buffer.from(JSON.stringify({ ...head, offsets: page.entries.map((e) => e.offset) })), pushes);
  const open = JSON.stringify(head);
  const parts: Buffer[] = [Buffer.from(`${open.slice(0, -1)},"messages":[`)];
  pushes.forEach((p, i) => {
    if (i > 0) parts.push(COMMA);
    parts.push(p);
  });
  parts.push(Buffer.from(']}'));
  return new EncodedReply(Buffer.concat(parts));
}
