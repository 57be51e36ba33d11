/**
 * Recovery on resubscribe: the client says the last position it saw; the
 * edge replays what it missed from the director's history up to where this
 * edge's live stream starts, while live messages are held on the connection,
 * then the held ones, in offset order with no gap and no duplicate.
 *
 * The replay is paged (history-reader.ts): the first page is read before the
 * reply (it tells whether history covers the position), the others after it,
 * each once the client's send buffer has drained below a quarter and its
 * history allowance has room, so a recovery larger than the send buffer
 * completes at the pace the client reads. The first page is small
 * (FIRST_READ_BYTES), so the many short recoveries of a reconnect
 * storm share the edge's bound on history reads in flight.
 *
 * A position from another epoch (the director restarted, or the channel was
 * collected) gets the current epoch's whole retained history with
 * `recovered: false`: everything sequenced since the new epoch began reaches
 * the client, even what was sequenced before this edge's subscription reached
 * the new director.
 */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import type { StreamPosition } from '../protocol/messages.js';
import type { ClientConnection } from './connection.js';
import type { Position } from './hub.js';
import type { SubscribeOutcome } from './context.js';
import { FIRST_READ_BYTES, type HistoryReader, type Page, type PageQuery } from './history-reader.js';

/** Errors after which a page read is tried again (within the command timeout). */
const TRANSIENT = new Set<number>([ErrorCodes.UNAVAILABLE.code, ErrorCodes.TIMEOUT.code]);

export interface RecoveryDeps {
  history: HistoryReader;
  /** Milliseconds to wait for the client's buffer or the director before giving up (command_timeout). */
  timeoutMs: number;
}

export async function recoverInto(deps: RecoveryDeps, conn: ClientConnection, channel: string, live: Position, from: StreamPosition): Promise<SubscribeOutcome> {
  const base = { channel, offset: live.offset, epoch: live.epoch };
  const sameEpoch = from.epoch === live.epoch;
  if (sameEpoch && from.offset >= live.offset) {
    return { result: { ...base, recovered: true, replayed: 0 }, afterReply: () => conn.release(channel, from.offset) };
  }
  const since = sameEpoch ? from.offset : 0;
  if (live.offset <= since) {
    return { result: { ...base, recovered: false, replayed: 0 }, afterReply: () => conn.release(channel, live.offset) };
  }
  const token = conn.beginRecovery(channel);
  const query: PageQuery = { channel, since, until: live.offset, epoch: live.epoch, limit: live.offset - since };
  let first: Page;
  try {
    first = await readPage(deps, conn, channel, token, query, FIRST_READ_BYTES);
  } catch (err) {
    conn.endRecovery(channel, token);
    throw err;
  }
  const m = first.meta;
  if (m.epoch !== live.epoch) {
    // The director restarted between the subscription and this read: the hub closes the channel's subscribers (4008).
    conn.endRecovery(channel, token);
    return { result: { ...base, recovered: false, replayed: 0 }, afterReply: () => conn.release(channel, live.offset) };
  }
  const recovered = sameEpoch && m.complete && m.available === live.offset - from.offset;
  return {
    result: { ...base, recovered, replayed: m.available },
    afterReply: () => void stream(deps, conn, channel, token, query, first, recovered, live),
  };
}

/** Write the first page and the following ones, then the held live pushes. */
async function stream(deps: RecoveryDeps, conn: ClientConnection, channel: string, token: object, query: PageQuery, first: Page, complete: boolean, live: Position): Promise<void> {
  let page: Page | null = first;
  let last = query.since!;
  try {
    while (page) {
      const offsets = page.meta.offsets;
      if (page.meta.epoch !== live.epoch) throw new GapError('epoch');
      // A recovery announced as complete must not skip an offset (history expired between two pages).
      if (complete && offsets.length > 0 && offsets[0] !== last + 1) throw new GapError('hole');
      if (!conn.recoveryWanted(channel, token)) return;
      conn.replay(page.pushes);
      if (offsets.length > 0) last = offsets[offsets.length - 1]!;
      if (!page.meta.more || last >= live.offset) break;
      page = await readPage(deps, conn, channel, token, { ...query, since: last, limit: live.offset - last }, Infinity);
    }
    if (complete && last < live.offset) throw new GapError('hole');
    if (conn.recoveryWanted(channel, token)) conn.release(channel, live.offset);
  } catch (err) {
    if (!conn.recoveryWanted(channel, token)) return;
    // The client was told these messages would come: it reconnects and recovers from what it got.
    conn.onGap(channel, err instanceof GapError ? err.kind : 'hole');
  } finally {
    conn.endRecovery(channel, token);
  }
}

class GapError extends Error {
  constructor(readonly kind: 'hole' | 'epoch') {
    super(`recovery stream broke (${kind})`);
  }
}

/**
 * One page of at most `largest` bytes (and the connection's page size) for
 * the connection once its send buffer has room and its allowance has some,
 * retrying a director that does not answer until the timeout.
 */
async function readPage(deps: RecoveryDeps, conn: ClientConnection, channel: string, token: object, query: PageQuery, largest: number): Promise<Page> {
  const deadline = Date.now() + deps.timeoutMs;
  let delay = 50;
  for (;;) {
    if (!conn.recoveryWanted(channel, token)) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'recovery stopped');
    const allowance = conn.allowance;
    // A recovery is never refused for its allowance: it waits for it to refill.
    const wait = allowance.waitMs(Math.min(conn.pageBytes, largest, 64 * 1024), Date.now());
    if (wait > 0) {
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    try {
      return await conn.inHistoryLane(async () => {
        const pageBytes = conn.pageBytes;
        // The client reads at its own pace: a page is asked for only once the buffer has room for it.
        if (!(await conn.whenBelow(pageBytes, Math.max(deps.timeoutMs, 1)))) {
          throw new TidingsError(conn.isClosed() ? ErrorCodes.UNAVAILABLE : ErrorCodes.TIMEOUT, 'the send buffer did not drain');
        }
        const maxBytes = Math.max(1, Math.min(pageBytes, largest, Math.floor(allowance.available(Date.now()))));
        const page = await deps.history.page(conn, query, maxBytes, () => conn.recoveryWanted(channel, token));
        if (!page) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'recovery stopped');
        allowance.take(page.bytes, Date.now());
        return page;
      });
    } catch (err) {
      const transient = err instanceof TidingsError && TRANSIENT.has(err.code);
      if (!transient || Date.now() + delay > deadline || !conn.recoveryWanted(channel, token)) throw err;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
    }
  }
}
