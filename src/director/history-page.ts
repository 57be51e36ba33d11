/**
 * The director's answer to a `history` command: one page of a channel's
 * history (history.ts) with where the channel stands. Pushes are never parsed
 * here: inline, they are spliced into the JSON text of the reply; `raw`, they
 * travel as extra frames of the reply with their offsets in the body (one
 * frame for them all with `packed`), and the edge writes them to clients as
 * they are.
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
  /**
   * With `raw`: the pushes in one frame, their byte `lengths` in the body. Every
   * ZeroMQ frame costs the receiving edge an allocation, a Buffer and its
   * finalizer: a page of 50 frames made a burst of history replies a quarter
   * garbage collection on the edge.
   */
  packed?: boolean;
  now: number;
}

const COMMA = Buffer.from(',');

/** What a page is made of: where the channel stands and the page's messages (an engine's HistoryPage). */
export interface PageSource {
  epoch: string;
  offset: number;
  /** The oldest offset still in history, or offset + 1 when it is empty. */
  oldest: number;
  more: boolean;
  available: number;
  messages: ReadonlyArray<{ offset: number; push: Buffer }>;
}

/**
 * {channel, epoch, offset, complete, more, available, messages | offsets}:
 * `complete` says history reaches back to `since` in this epoch with nothing
 * expired between; `more` that the page stopped at the byte bound before
 * `limit` messages (ask again from the last offset); `available` how many
 * messages the whole range holds (at most `limit`). A page read in another
 * epoch than the caller's carries no messages.
 */
export function encodeHistoryPage(src: PageSource, q: PageQuery): EncodedReply {
  const sameEpoch = q.epoch === null || q.epoch === src.epoch;
  const messages = sameEpoch ? src.messages : [];
  const complete = q.since === undefined ? true : sameEpoch && src.oldest <= q.since + 1;
  const head = { channel: q.channel, epoch: src.epoch, offset: src.offset, complete, more: sameEpoch && src.more, available: sameEpoch ? src.available : 0 };
  const pushes = messages.map((e) => e.push);
  if (q.raw && q.packed) {
    const body = Buffer.from(JSON.stringify({ ...head, offsets: messages.map((e) => e.offset), lengths: pushes.map((p) => p.length) }));
    return new EncodedReply(body, pushes.length > 0 ? [Buffer.concat(pushes)] : []);
  }
  if (q.raw) return new EncodedReply(Buffer.from(JSON.stringify({ ...head, offsets: messages.map((e) => e.offset) })), pushes);
  const open = JSON.stringify(head);
  const parts: Buffer[] = [Buffer.from(`${open.slice(0, -1)},"messages":[`)];
  pushes.forEach((p, i) => {
    if (i > 0) parts.push(COMMA);
    parts.push(p);
  });
  parts.push(Buffer.from(']}'));
  return new EncodedReply(Buffer.concat(parts));
}

/** A page of a channel of the memory registry (historyPage for ChannelState). */
export function historyPage(state: ChannelState, q: PageQuery): EncodedReply {
  const sameEpoch = q.epoch === null || q.epoch === state.epoch;
  const page = sameEpoch
    ? state.history.read({ since: q.since, until: q.until, limit: q.limit, maxBytes: q.maxBytes }, q.now)
    : { entries: [], more: false, available: 0 };
  return encodeHistoryPage({ epoch: state.epoch, offset: state.offset, oldest: state.oldestOffset, more: page.more, available: page.available, messages: page.entries }, q);
}
