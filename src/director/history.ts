/**
 * Channel history: the messages a channel retains for recovery and `history`
 * reads, bounded per channel by count, age and bytes, and across every channel
 * of the director by one byte budget (the oldest message of the whole director
 * goes first when the budget is full). Reads are paged: `since` a position, at
 * most `limit` messages and about `maxBytes` bytes, saying whether more follow.
 *
 * Bytes are charged as the stored push plus ENTRY_OVERHEAD, the measured cost
 * of one entry's objects, so the budget tracks real memory (see
 * docs/operations.md, "History and memory"). Pure bookkeeping, no I/O: time
 * comes in as arguments.
 */

/** Bounds of one channel's history; 0 for maxAgeMs means no age bound. */
export interface HistoryLimits {
  maxCount: number;
  maxAgeMs: number;
  maxBytes: number;
}

/**
 * Memory one history entry costs beyond its push bytes: the entry object, the
 * Buffer object with its own backing store, and the ring and budget slots.
 * Measured with bench/history-memory.ts (docs/operations.md).
 */
export const ENTRY_OVERHEAD = 300;

const EMPTY = Buffer.alloc(0);

/** A push written straight into history memory (push-encoding.ts MessagePushBytes). */
export interface PushWriter {
  readonly size: number;
  writeTo(out: Uint8Array, at: number): void;
  /** The push in a buffer of its own (sets framed false). */
  alone(): Buffer;
  /** Set by storeBytes: the push was placed in a slab, SLAB_GAP free bytes before it. */
  framed: boolean;
}

export interface HistoryEntry {
  readonly offset: number;
  readonly time: number;
  /** The encoded client push (JSON). */
  push: Buffer;
  /** Bytes charged: push length + ENTRY_OVERHEAD. */
  cost: number;
  /** The history holding it; null once removed. */
  owner: ChannelHistory | null;
}

export interface HistoryPage {
  entries: HistoryEntry[];
  /** The page stopped at maxBytes before `limit` messages while more of the range remain. */
  more: boolean;
  /** Messages of the whole range (capped by limit), this page included. */
  available: number;
}

export interface HistoryRead {
  /** Messages after this offset; undefined: the newest `limit` messages. */
  since?: number;
  /** Messages up to this offset (inclusive). */
  until?: number;
  limit: number;
  /** Bytes of pushes in the page; the first message is always included, whatever its size. */
  maxBytes: number;
}

/**
 * Slabs: a busy channel's pushes are written into its own slabs, several
 * entries per ArrayBuffer, instead of one ArrayBuffer each (allocating one
 * per message was the director's largest cost after parsing, issue 17).
 * A channel's entries leave oldest first, so its live entries fill a run of
 * its slabs: what a slab keeps alive beyond them is the dead start of the
 * oldest slab, the free end of the newest and the short ends of those between
 * (each entry is at most SLAB_ENTRY_SHARE of its slab). These bounds keep that
 * within about a fifth of the bytes the channel is charged for:
 * - a slab is at most 1/SLAB_SHARE of the channel's charged bytes (and
 *   SLAB_MAX): only channels holding SLAB_SHARE x SLAB_MIN bytes get slabs;
 * - when the channel's charged bytes fall below SLAB_KEEP x its largest slab
 *   (age, count or budget trims), its entries are copied out to their own
 *   buffers and the slabs dropped; an entry is copied at most once.
 * Entries are never written twice: a slab is append-only.
 */
const SLAB_MIN = 2048;
/** As large as a down batch (batch.ts DOWN_BATCH_BYTES): a busy channel's batch is then the run of pushes in one slab. */
const SLAB_MAX = 64 * 1024;
const SLAB_SHARE = 32;
const SLAB_KEEP = 16;
const SLAB_ENTRY_SHARE = 16;

/**
 * Free bytes before each push in a slab: the down batcher writes a batch
 * entry's head there (batch.ts DOWN_ENTRY_HEAD), so a run of a channel's
 * pushes in a slab goes down as the slab's bytes, uncopied
 * (down-batcher.ts). Charged within ENTRY_OVERHEAD.
 */
export const SLAB_GAP = 12;

/** Largest power of two at most n. */
function floorPow2(n: number): number {
  return n < 1 ? 0 : 2 ** Math.floor(Math.log2(n));
}

/** A copy with its own memory: a slice of Node's shared 8 KB pool (or of a slab) would keep the whole chunk alive. */
function own(push: Buffer): Buffer {
  if (push.byteOffset === 0 && push.buffer.byteLength === push.length) return push;
  const copy = Buffer.allocUnsafeSlow(push.length);
  push.copy(copy);
  return copy;
}

/**
 * The director-wide byte budget of history. Entries are queued in the order
 * they were stored; past `maxBytes` the oldest still stored is removed from its
 * channel, whichever channel that is.
 */
export class HistoryBudget {
  /** Bytes charged by every stored entry. */
  used = 0;
  /** Entries stored across every channel. */
  count = 0;
  /** Entries evicted because the budget was full. */
  evicted = 0;
  private fifo: Array<HistoryEntry | undefined> = [];
  private head = 0;

  constructor(readonly maxBytes: number) {}

  add(entry: HistoryEntry): void {
    this.fifo.push(entry);
    this.used += entry.cost;
    this.count++;
    while (this.used > this.maxBytes && this.evictOldest()) this.evicted++;
  }

  /** A stored entry changed size (an edit): charge the difference. */
  adjust(delta: number): void {
    this.used += delta;
    while (this.used > this.maxBytes && this.evictOldest()) this.evicted++;
  }

  /** An entry left its channel (count, age or byte bound, or eviction). */
  release(entry: HistoryEntry): void {
    this.used -= entry.cost;
    this.count--;
    // Removed entries stay queued until they reach the head; compact when they dominate.
    const queued = this.fifo.length - this.head;
    if (queued > 1024 && queued > 2 * this.count) {
      this.fifo = this.fifo.slice(this.head).filter((e) => e !== undefined && e.owner !== null);
      this.head = 0;
    }
  }

  private evictOldest(): boolean {
    while (this.head < this.fifo.length) {
      const e = this.fifo[this.head];
      this.fifo[this.head] = undefined;
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.fifo.length) {
        this.fifo = this.fifo.slice(this.head);
        this.head = 0;
      }
      if (e && e.owner) {
        // Channels remove only from their oldest end, so this is its channel's oldest entry.
        e.owner.dropOldest();
        return true;
      }
    }
    return false;
  }
}

export class ChannelHistory {
  private ring: Array<HistoryEntry | undefined> = [];
  private start = 0;
  /** Bytes charged by this channel's entries. */
  bytes = 0;
  /** The slab new pushes are written into, and how much of it is used. */
  private slab: Buffer | null = null;
  private slabUsed = 0;
  /** The largest slab a stored entry may still sit in; 0 when none does. */
  private slabMax = 0;
  /** Whether the last push placed went into a slab (SLAB_GAP free bytes before it). */
  private placedInSlab = false;

  constructor(
    public limits: HistoryLimits,
    private readonly budget: HistoryBudget,
  ) {}

  get length(): number {
    return this.ring.length - this.start;
  }

  /** The oldest offset still stored, or null when empty. */
  get oldestOffset(): number | null {
    return this.length > 0 ? this.ring[this.start]!.offset : null;
  }

  add(offset: number, time: number, push: Buffer): void {
    const { maxCount, maxBytes } = this.limits;
    const cost = push.length + ENTRY_OVERHEAD;
    if (maxCount <= 0 || cost > maxBytes) {
      // Not kept (no history, or larger than the channel may hold): older entries still age out.
      this.trim(time);
      return;
    }
    this.keep({ offset, time, push: own(push), cost, owner: this });
  }

  /**
   * Store a push given as text, encoding it once into history memory (a
   * slab or its own buffer); returns its bytes, to send as they are. When the
   * channel keeps no history, or not this message, a plain buffer.
   */
  store(offset: number, time: number, text: string): Buffer {
    const { maxCount, maxBytes } = this.limits;
    const size = Buffer.byteLength(text);
    const cost = size + ENTRY_OVERHEAD;
    if (maxCount <= 0 || cost > maxBytes) {
      this.trim(time);
      return Buffer.from(text);
    }
    const push = this.place(size);
    push.write(text, 0, size, 'utf8');
    this.keep({ offset, time, push, cost, owner: this });
    return push;
  }

  /** store() for a push written as bytes (push-encoding.ts MessagePushBytes, placed at `offset`): no text made. */
  storeBytes(offset: number, time: number, writer: PushWriter): Buffer {
    const { maxCount, maxBytes } = this.limits;
    const size = writer.size;
    const cost = size + ENTRY_OVERHEAD;
    if (maxCount <= 0 || cost > maxBytes) {
      this.trim(time);
      return writer.alone();
    }
    const push = this.place(size);
    writer.writeTo(push, 0);
    writer.framed = this.placedInSlab;
    this.keep({ offset, time, push, cost, owner: this });
    return push;
  }

  /** Room for a push of `size` bytes: in the current slab (after SLAB_GAP free bytes), a new one, or a buffer of its own. */
  private place(size: number): Buffer {
    let slab = this.slab;
    const need = size + SLAB_GAP;
    // An entry too large for the current slab's share gets its own buffer and leaves the slab to smaller ones.
    const fitsShare = slab !== null && need * SLAB_ENTRY_SHARE <= slab.length;
    if (slab === null || (fitsShare && need > slab.length - this.slabUsed)) {
      // A new slab; the old one's free end (shorter than this entry, so at most 1/SLAB_ENTRY_SHARE of it) stays unused.
      const want = Math.min(SLAB_MAX, floorPow2(this.bytes / SLAB_SHARE));
      if (want >= SLAB_MIN && need * SLAB_ENTRY_SHARE <= want) {
        slab = this.slab = Buffer.allocUnsafeSlow(want);
        this.slabUsed = 0;
        if (want > this.slabMax) this.slabMax = want;
      } else {
        slab = this.slab = null;
      }
    } else if (!fitsShare) {
      slab = null;
    }
    if (slab === null) {
      this.placedInSlab = false;
      return Buffer.allocUnsafeSlow(size);
    }
    const at = this.slabUsed + SLAB_GAP;
    this.slabUsed = at + size;
    this.placedInSlab = true;
    return slab.subarray(at, at + size);
  }

  private keep(entry: HistoryEntry): void {
    this.ring.push(entry);
    this.bytes += entry.cost;
    this.budget.add(entry);
    this.trim(entry.time);
  }

  /** The channel holds too little for its slabs: every entry gets its own buffer (see SLAB_KEEP). */
  private unslab(): void {
    for (let i = this.start; i < this.ring.length; i++) {
      const e = this.ring[i]!;
      e.push = own(e.push);
    }
    this.slab = null;
    this.slabUsed = 0;
    this.slabMax = 0;
  }

  /** New bounds (a channel config changed); applied at once. */
  setLimits(limits: HistoryLimits, now: number): void {
    this.limits = limits;
    this.trim(now);
  }

  /** Drop what is past the count, byte or age bound. */
  trim(now: number): void {
    const { maxCount, maxBytes, maxAgeMs } = this.limits;
    while (this.length > 0) {
      const oldest = this.ring[this.start]!;
      const over = this.length > maxCount || this.bytes > maxBytes || (maxAgeMs > 0 && now - oldest.time > maxAgeMs);
      if (!over) break;
      this.dropOldest();
    }
  }

  /** Remove the oldest entry (also called by the budget). */
  dropOldest(): void {
    const e = this.ring[this.start];
    if (!e) return;
    this.ring[this.start] = undefined;
    this.start++;
    this.bytes -= e.cost;
    e.owner = null;
    e.push = EMPTY;
    this.budget.release(e);
    if (this.slabMax > 0 && this.bytes < SLAB_KEEP * this.slabMax) this.unslab();
    if (this.start > 256 && this.start * 2 > this.ring.length) {
      this.ring = this.ring.slice(this.start);
      this.start = 0;
    } else if (this.start === this.ring.length) {
      this.ring = [];
      this.start = 0;
    }
  }

  /** Remove everything (the channel's state is being dropped). */
  clear(): void {
    while (this.length > 0) this.dropOldest();
  }

  /** Index of the first stored entry with offset > `offset` (offsets increase along the ring). */
  private indexAfter(offset: number): number {
    let lo = this.start;
    let hi = this.ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ring[mid]!.offset <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** A page of the range (since, until], oldest first; see HistoryRead. */
  read(q: HistoryRead, now: number): HistoryPage {
    this.trim(now);
    const end = q.until === undefined ? this.ring.length : this.indexAfter(q.until);
    const begin = q.since === undefined ? Math.max(this.start, end - q.limit) : this.indexAfter(q.since);
    const last = Math.min(end, begin + Math.max(0, q.limit));
    const entries: HistoryEntry[] = [];
    let bytes = 0;
    let i = begin;
    for (; i < last; i++) {
      const e = this.ring[i]!;
      if (entries.length > 0 && bytes + e.push.length > q.maxBytes) break;
      entries.push(e);
      bytes += e.push.length;
    }
    return { entries, more: i < last, available: Math.max(0, last - begin) };
  }

  /** The newest entry whose push `match`es, or undefined (for edits and deletes). */
  findNewest(match: (push: Buffer) => boolean): HistoryEntry | undefined {
    for (let i = this.ring.length - 1; i >= this.start; i--) {
      const e = this.ring[i]!;
      if (match(e.push)) return e;
    }
    return undefined;
  }

  /** Replace a stored push (an edit or a delete's tombstone), charging the new size. */
  replace(entry: HistoryEntry, push: Buffer): void {
    if (entry.owner !== this) return;
    const cost = push.length + ENTRY_OVERHEAD;
    const delta = cost - entry.cost;
    this.bytes += delta;
    entry.cost = cost;
    entry.push = own(push);
    this.budget.adjust(delta);
  }

  /** The newest `count` entries, oldest first (for small views such as channelstream's /info). */
  newest(count: number, now: number): HistoryEntry[] {
    this.trim(now);
    return this.ring.slice(Math.max(this.start, this.ring.length - count)) as HistoryEntry[];
  }
}
