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
import { ErrorCodes, TidingsError } from '../protocol/errors.js';

/** Asks the director for one page (the command client's raw history read). */
export type PageFetch = (query: PageQuery, maxBytes: number) => Promise<Page>;

/** The director's raw history reply as a Page (packed: one frame for all pushes). */
export function commandPageFetch(commands: CommandClient): PageFetch {
  return async (query, maxBytes) => {
    const r = await commands.requestFramed<PageMeta & { lengths?: unknown }>('history', { ...query, max_bytes: maxBytes, raw: true, packed: true });
    return pageOfReply(r.result, r.frames);
  };
}

/**
 * A raw history reply's body and frames as a Page: with `lengths`, the pushes
 * are views into its one frame (a director of an earlier version ignores
 * `packed` and sends a frame per push). A packed frame whose lengths do not
 * add up is refused whole (100), never cut into wrong messages.
 */
export function pageOfReply(result: PageMeta & { lengths?: unknown }, frames: Buffer[]): Page {
  const { lengths, ...meta } = result;
  if (lengths === undefined) {
    let bytes = 0;
    for (const f of frames) bytes += f.length;
    return { meta, pushes: frames, bytes };
  }
  const all = frames[0] ?? Buffer.alloc(0);
  const fits = Array.isArray(lengths) && lengths.length === meta.offsets.length && frames.length <= 1;
  const pushes: Buffer[] = [];
  let at = 0;
  for (const n of fits ? (lengths as unknown[]) : []) {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || at + n > all.length) break;
    pushes.push(all.subarray(at, at + n));
    at += n;
  }
  if (!fits || pushes.length !== meta.offsets.length || at !== all.length) {
    throw new TidingsError(ErrorCodes.INTERNAL, `a packed history page does not add up: ${frames.length} frame(s) of ${all.length} B for lengths ${JSON.stringify(lengths).slice(0, 80)}`);
  }
  return { meta, pushes, bytes: at };
}

/** Most bytes of history pages an edge has asked the director for and not yet received. */
export const IN_FLIGHT_BYTES = 4 * 1024 * 1024;
/** Largest page an edge asks for. */
export const HISTORY_PAGE_BYTES = 1024 * 1024;
/**
 * Largest first read of a recovery or of a `history` command. A read holds
 * its whole `maxBytes` of IN_FLIGHT_BYTES for a round trip to the director,
 * however little comes back; most reconnects miss seconds of messages, and
 * most history pages are a few KB. With full 1 MB reads only four ran at
 * once, and the 10 000 clients of a dead node queued behind them (about 350
 * recovered a second in the storm bench, the edge's CPU half idle). At 64 KB,
 * 64 run at once; a longer read goes on with the bytes left.
 */
export const FIRST_READ_BYTES = 64 * 1024;
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

/**
 * One `history` page of at most `maxBytes`, read in steps: at most
 * FIRST_READ_BYTES first, then on from the last message with the bytes left,
 * each step holding only its own size of the edge's bound, so a burst of
 * small history commands runs as many at once as small recoveries do. The
 * page is the one a single read of `maxBytes` would have given when the first
 * step was read (later steps stop at the channel's offset then; a message that
 * does not fit what is left stays for the next page, `more: true`), except
 * where the channel changed between steps (another epoch, or messages expired
 * so the next step does not go on from the last offset): the page stops
 * there with `more: true`, and asking on from its last offset says what
 * happened. Null when `alive` turned false.
 */
export async function readInSteps(reader: HistoryReader, owner: object, query: PageQuery, maxBytes: number, alive: () => boolean): Promise<Page | null> {
  const first = await reader.page(owner, query, Math.min(maxBytes, FIRST_READ_BYTES), alive);
  if (first === null || !first.meta.more || first.bytes >= maxBytes || first.pushes.length === 0) return first;
  const pushes = [...first.pushes];
  const offsets = [...first.meta.offsets];
  let bytes = first.bytes;
  let more = true;
  const until = query.until ?? first.meta.offset;
  while (more && offsets.length < query.limit && bytes < maxBytes) {
    const last = offsets[offsets.length - 1]!;
    const left = maxBytes - bytes;
    const next = await reader.page(owner, { ...query, since: last, until, epoch: first.meta.epoch, limit: query.limit - offsets.length }, left, alive);
    if (next === null) return null;
    const m = next.meta;
    // Messages expired between the steps, or the director restarted (a reply for another epoch carries none).
    if (m.offsets[0] !== last + 1) break;
    // The director sends a step's first message whatever its size; a single read would have stopped before it.
    let taken = 0;
    let size = 0;
    while (taken < next.pushes.length && size + next.pushes[taken]!.length <= left) size += next.pushes[taken++]!.length;
    if (taken === 0) break;
    for (let i = 0; i < taken; i++) {
      pushes.push(next.pushes[i]!);
      offsets.push(m.offsets[i]!);
    }
    bytes += size;
    more = taken < next.pushes.length || m.more;
  }
  return { meta: { ...first.meta, more, offsets }, pushes, bytes };
}
