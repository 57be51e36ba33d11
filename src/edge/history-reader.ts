/**
 * History reads of an edge (a client's `history` command and recoveries):
 * pages of a channel's history pulled from the director, never more at once
 * than the bounds below allow.
 *
 * - Per connection, an allowance of `client_history_bytes` per
 *   `client_history_window` seconds (a token bucket that refills
 *   continuously): a `history` command past it is refused with 136
 *   history_limit and the seconds to wait; a recovery waits.
 * - Per edge, at most IN_FLIGHT_BYTES of pages asked for and not yet arrived,
 *   granted to connections in turn (fewest reads in flight first, then round
 *   robin), so one connection with many reads waits its turn like the others, and the director's reply
 *   path to this edge never holds more than that much history: a reply to any
 *   other command waits behind at most that many bytes.
 * - Per page, at most a quarter of `client_send_buffer` (and HISTORY_PAGE_BYTES),
 *   fetched only once the connection's send buffer has drained below a
 *   quarter: a page always fits, so a large recovery is written page by page
 *   at the pace the client reads instead of being cut off as a slow consumer.
 */
import type { CommandClient } from '../zmq/command-client.js';

/** Asks the director for one page (the command client's raw history read). */
export type PageFetch = (query: PageQuery, maxBytes: number) => Promise<Page>;

/** The director's raw history reply as a Page. */
export function commandPageFetch(commands: CommandClient): PageFetch {
  return async (query, maxBytes) => {
    const r = await commands.requestFramed<PageMeta>('history', { ...query, max_bytes: maxBytes, raw: true });
    let bytes = 0;
    for (const f of r.frames) bytes += f.length;
    return { meta: r.result, pushes: r.frames, bytes };
  };
}

/** Most bytes of history pages an edge has asked the director for and not yet received. */
export const IN_FLIGHT_BYTES = 4 * 1024 * 1024;
/** Largest page an edge asks for. */
export const HISTORY_PAGE_BYTES = 1024 * 1024;
/**
 * Largest first page of a recovery. A read holds its whole `maxBytes` of
 * IN_FLIGHT_BYTES for a round trip to the director, however little comes
 * back; most reconnects miss seconds of messages, a few KB. With full 1 MB
 * pages only four recoveries ran at once, and the 10 000 clients of a dead
 * node queued behind them (about 350 recovered a second in the storm bench,
 * the edge's CPU half idle). At 64 KB, 64 run at once; a longer catch-up goes
 * on with full pages.
 */
export const FIRST_RECOVERY_PAGE_BYTES = 64 * 1024;
/** Waiting owners looked at to find the one with the fewest reads in flight. */
const TURN_SCAN = 64;

/** Where a channel's history stands and what one page holds (the director's raw history reply). */
export interface PageMeta {
  channel: string;
  epoch: string;
  offset: number;
  complete: boolean;
  more: boolean;
  available: number;
  offsets: number[];
}

export interface Page {
  meta: PageMeta;
  /** The pushes (client JSON), oldest first; `meta.offsets[i]` is the offset of `pushes[i]`. */
  pushes: Buffer[];
  bytes: number;
}

export interface PageQuery {
  channel: string;
  since?: number;
  until?: number;
  epoch?: string;
  limit: number;
}

/** A connection's history allowance: a bucket of `capacity` bytes refilled at capacity per `windowMs`. */
export class HistoryAllowance {
  private tokens: number;
  private last: number;

  constructor(
    readonly capacity: number,
    readonly windowMs: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.last = now;
  }

  available(now: number): number {
    if (now > this.last) {
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.capacity) / this.windowMs);
      this.last = now;
    }
    return this.tokens;
  }

  /** Charge what a page held (the balance may go below zero by one message). */
  take(bytes: number, now: number): void {
    this.available(now);
    this.tokens -= bytes;
  }

  /** Milliseconds until `bytes` (at most the capacity) are available. */
  waitMs(bytes: number, now: number): number {
    const missing = Math.min(bytes, this.capacity) - this.available(now);
    return missing <= 0 ? 0 : Math.ceil((missing * this.windowMs) / this.capacity);
  }
}

interface Waiter {
  bytes: number;
  grant: () => void;
}

/** The edge's page reads from the director, bounded in bytes and shared in turn between connections. */
export class HistoryReader {
  private inFlight = 0;
  /** Reads in flight per owner (a connection). */
  private readonly inFlightBy = new Map<object, number>();
  /** Waiting reads by owner; the map's order is the turn order. */
  private readonly waiting = new Map<object, Waiter[]>();

  constructor(
    private readonly fetch: PageFetch,
    readonly limitBytes = IN_FLIGHT_BYTES,
  ) {}

  /** Bytes of pages asked for and not yet arrived. */
  get bytesInFlight(): number {
    return this.inFlight;
  }

  /**
   * One page for `owner`, at most `maxBytes` (the first message always comes,
   * whatever its size). `alive` is checked once the turn comes: a connection
   * that closed meanwhile asks for nothing.
   */
  async page(owner: object, query: PageQuery, maxBytes: number, alive: () => boolean): Promise<Page | null> {
    await this.acquire(owner, maxBytes);
    try {
      if (!alive()) return null;
      return await this.fetch(query, maxBytes);
    } finally {
      this.inFlight -= maxBytes;
      const n = this.inFlightBy.get(owner)! - 1;
      if (n === 0) this.inFlightBy.delete(owner);
      else this.inFlightBy.set(owner, n);
      this.grant();
    }
  }

  private take(owner: object, bytes: number): void {
    this.inFlight += bytes;
    this.inFlightBy.set(owner, (this.inFlightBy.get(owner) ?? 0) + 1);
  }

  private acquire(owner: object, bytes: number): Promise<void> {
    if (this.waiting.size === 0 && (this.inFlight === 0 || this.inFlight + bytes <= this.limitBytes)) {
      this.take(owner, bytes);
      return Promise.resolve();
    }
    return new Promise((grant) => {
      const list = this.waiting.get(owner);
      if (list) list.push({ bytes, grant });
      else this.waiting.set(owner, [{ bytes, grant }]);
    });
  }

  /**
   * Grant waiting reads in turn: among the first TURN_SCAN waiting owners, the
   * first with the fewest reads in flight gets its oldest read, then goes to
   * the back.
   */
  private grant(): void {
    while (this.waiting.size > 0) {
      let chosen: [object, Waiter[]] | null = null;
      let fewest = Infinity;
      let scanned = 0;
      for (const entry of this.waiting) {
        const n = this.inFlightBy.get(entry[0]) ?? 0;
        if (n < fewest) {
          fewest = n;
          chosen = entry;
          if (n === 0) break;
        }
        if (++scanned >= TURN_SCAN) break;
      }
      const [owner, list] = chosen!;
      const w = list[0]!;
      if (this.inFlight > 0 && this.inFlight + w.bytes > this.limitBytes) return;
      list.shift();
      this.waiting.delete(owner);
      if (list.length > 0) this.waiting.set(owner, list);
      this.take(owner, w.bytes);
      w.grant();
    }
  }
}
