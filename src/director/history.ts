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
  /** The history it was read from (an edit goes back to it); null when it is not from one. */
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
 * A run of one channel's entries in the budget's queue: the entries that
 * channel stored as its `first`-th to `first + count - 1`-th (its own count
 * of entries kept, ChannelHistory.seq). Consecutive entries of one channel
 * share a run, so a busy channel queues a handful of runs, not an object
 * per message.
 */
interface Run {
  history: ChannelHistory;
  first: number;
  count: number;
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
  private fifo: Array<Run | undefined> = [];
  private head = 0;
  /** Entries the queued runs stand for, some of which may have left their channel already. */
  private queued = 0;

  constructor(readonly maxBytes: number) {}

  /** `history` kept its `seq`-th entry, charged `cost`. */
  add(history: ChannelHistory, seq: number, cost: number): void {
    const last = this.fifo.length > this.head ? this.fifo[this.fifo.length - 1] : undefined;
    if (last !== undefined && last.history === history && last.first + last.count === seq) last.count++;
    else this.fifo.push({ history, first: seq, count: 1 });
    this.queued++;
    this.used += cost;
    this.count++;
    while (this.used > this.maxBytes && this.evictOldest()) this.evicted++;
  }

  /** A stored entry changed size (an edit): charge the difference. */
  adjust(delta: number): void {
    this.used += delta;
    while (this.used > this.maxBytes && this.evictOldest()) this.evicted++;
  }

  /** An entry left its channel (count, age or byte bound, or eviction). */
  release(cost: number): void {
    this.used -= cost;
    this.count--;
    // Runs of entries their channels removed stay queued until they reach the head; compact when they dominate.
    if (this.queued > 1024 && this.queued > 2 * this.count) this.compact();
  }

  /** Drop what the channels removed already from the queued runs. */
  private compact(): void {
    const kept: Run[] = [];
    let queued = 0;
    for (let i = this.head; i < this.fifo.length; i++) {
      const r = this.fifo[i]!;
      this.skipRemoved(r);
      if (r.count > 0) {
        kept.push(r);
        queued += r.count;
      }
    }
    this.fifo = kept;
    this.head = 0;
    this.queued = queued;
  }

  /** Advance a run past the entries its channel removed itself (channels remove oldest first). */
  private skipRemoved(r: Run): void {
    const gone = Math.min(r.count, r.history.removed - r.first);
    if (gone > 0) {
      r.first += gone;
      r.count -= gone;
      this.queued -= gone;
    }
  }

  private evictOldest(): boolean {
    while (this.head < this.fifo.length) {
      const r = this.fifo[this.head]!;
      this.skipRemoved(r);
      if (r.count > 0) {
        // The run's first entry is now its channel's oldest: the oldest entry stored anywhere.
        r.first++;
        r.count--;
        this.queued--;
        if (r.count === 0) this.popHead();
        r.history.dropOldest();
        return true;
      }
      this.popHead();
    }
    return false;
  }

  private popHead(): void {
    this.fifo[this.head] = undefined;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.head);
      this.head = 0;
    }
  }
}

const INITIAL_CAPACITY = 16;

/**
 * One channel's history, kept as columns in a ring rather than an object per
 * message: offsets and times in Float64Arrays, each push as (buffer, start,
 * length) with the buffer (a slab or the push's own) in a plain array that
 * mostly repeats the same few slabs. A channel holding a million messages is
 * then a few arrays to the garbage collector, not millions of objects to
 * promote and mark (what history cost the director per message was mostly
 * that: issue 17). Entries handed out (reads, edits) are made on demand.
 */
export class ChannelHistory {
  private offsets = new Float64Array(INITIAL_CAPACITY);
  private times = new Float64Array(INITIAL_CAPACITY);
  private starts = new Int32Array(INITIAL_CAPACITY);
  private lengths = new Int32Array(INITIAL_CAPACITY);
  private buffers: Array<Buffer | undefined> = new Array<Buffer | undefined>(INITIAL_CAPACITY).fill(undefined);
  /** Ring index of the oldest entry; capacity is a power of two. */
  private head = 0;
  private size = 0;
  /** Entries this channel ever kept, and ever removed: the oldest entry is the `removed`-th (for the budget's runs). */
  private kept = 0;
  removed = 0;
  /** Bytes charged by this channel's entries. */
  bytes = 0;
  /** The slab new pushes are written into, and how much of it is used. */
  private slab: Buffer | null = null;
  private slabUsed = 0;
  /** The largest slab a stored entry may still sit in; 0 when none does. */
  private slabMax = 0;
  /** Where the last push was placed: its buffer and start; whether in a slab (SLAB_GAP free bytes before it). */
  private placedBuffer: Buffer = EMPTY;
  private placedAt = 0;
  private placedInSlab = false;

  constructor(
    public limits: HistoryLimits,
    private readonly budget: HistoryBudget,
  ) {}

  get length(): number {
    return this.size;
  }

  /** The oldest offset still stored, or null when empty. */
  get oldestOffset(): number | null {
    return this.size > 0 ? this.offsets[this.head]! : null;
  }

  /** Ring index of the i-th entry, oldest first. */
  private at(i: number): number {
    return (this.head + i) & (this.offsets.length - 1);
  }

  private pushAt(r: number): Buffer {
    const start = this.starts[r]!;
    return this.buffers[r]!.subarray(start, start + this.lengths[r]!);
  }

  private entryAt(i: number): HistoryEntry {
    const r = this.at(i);
    const length = this.lengths[r]!;
    return { offset: this.offsets[r]!, time: this.times[r]!, push: this.pushAt(r), cost: length + ENTRY_OVERHEAD, owner: this };
  }

  add(offset: number, time: number, push: Buffer): void {
    const { maxCount, maxBytes } = this.limits;
    const cost = push.length + ENTRY_OVERHEAD;
    if (maxCount <= 0 || cost > maxBytes) {
      // Not kept (no history, or larger than the channel may hold): older entries still age out.
      this.trim(time);
      return;
    }
    const kept = own(push);
    this.keep(offset, time, kept, 0, kept.length);
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
    this.place(size);
    const buffer = this.placedBuffer;
    const at = this.placedAt;
    buffer.write(text, at, size, 'utf8');
    this.keep(offset, time, buffer, at, size);
    return buffer.subarray(at, at + size);
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
    this.place(size);
    const buffer = this.placedBuffer;
    const at = this.placedAt;
    writer.writeTo(buffer, at);
    writer.framed = this.placedInSlab;
    this.keep(offset, time, buffer, at, size);
    return buffer.subarray(at, at + size);
  }

  /** Room for a push of `size` bytes: in the current slab (after SLAB_GAP free bytes), a new one, or a buffer of its own. */
  private place(size: number): void {
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
      this.placedBuffer = Buffer.allocUnsafeSlow(size);
      this.placedAt = 0;
      return;
    }
    const at = this.slabUsed + SLAB_GAP;
    this.slabUsed = at + size;
    this.placedInSlab = true;
    this.placedBuffer = slab;
    this.placedAt = at;
  }

  private keep(offset: number, time: number, buffer: Buffer, start: number, length: number): void {
    if (this.size === this.offsets.length) this.grow();
    const r = this.at(this.size);
    this.offsets[r] = offset;
    this.times[r] = time;
    this.buffers[r] = buffer;
    this.starts[r] = start;
    this.lengths[r] = length;
    this.size++;
    const cost = length + ENTRY_OVERHEAD;
    this.bytes += cost;
    this.budget.add(this, this.kept++, cost);
    this.trim(time);
  }

  /** Twice the capacity, entries moved to the start (oldest first). */
  private grow(): void {
    const capacity = this.offsets.length * 2;
    const offsets = new Float64Array(capacity);
    const times = new Float64Array(capacity);
    const starts = new Int32Array(capacity);
    const lengths = new Int32Array(capacity);
    const buffers = new Array<Buffer | undefined>(capacity).fill(undefined);
    for (let i = 0; i < this.size; i++) {
      const r = this.at(i);
      offsets[i] = this.offsets[r]!;
      times[i] = this.times[r]!;
      starts[i] = this.starts[r]!;
      lengths[i] = this.lengths[r]!;
      buffers[i] = this.buffers[r];
    }
    this.offsets = offsets;
    this.times = times;
    this.starts = starts;
    this.lengths = lengths;
    this.buffers = buffers;
    this.head = 0;
  }

  /** The channel holds too little for its slabs: every entry gets its own buffer (see SLAB_KEEP). */
  private unslab(): void {
    for (let i = 0; i < this.size; i++) {
      const r = this.at(i);
      this.buffers[r] = own(this.pushAt(r));
      this.starts[r] = 0;
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
    while (this.size > 0) {
      const over = this.size > maxCount || this.bytes > maxBytes || (maxAgeMs > 0 && now - this.times[this.head]! > maxAgeMs);
      if (!over) break;
      this.dropOldest();
    }
  }

  /** Remove the oldest entry (also called by the budget). */
  dropOldest(): void {
    if (this.size === 0) return;
    const r = this.head;
    const cost = this.lengths[r]! + ENTRY_OVERHEAD;
    this.buffers[r] = undefined;
    this.head = (r + 1) & (this.offsets.length - 1);
    this.size--;
    this.removed++;
    this.bytes -= cost;
    this.budget.release(cost);
    if (this.slabMax > 0 && this.bytes < SLAB_KEEP * this.slabMax) this.unslab();
    if (this.size === 0 && this.offsets.length > INITIAL_CAPACITY) this.shrink();
  }

  /** An emptied channel gives its columns back (a million-message ring must not outlive its messages). */
  private shrink(): void {
    this.offsets = new Float64Array(INITIAL_CAPACITY);
    this.times = new Float64Array(INITIAL_CAPACITY);
    this.starts = new Int32Array(INITIAL_CAPACITY);
    this.lengths = new Int32Array(INITIAL_CAPACITY);
    this.buffers = new Array<Buffer | undefined>(INITIAL_CAPACITY).fill(undefined);
    this.head = 0;
  }

  /** Remove everything (the channel's state is being dropped). */
  clear(): void {
    while (this.size > 0) this.dropOldest();
  }

  /** Index (oldest first) of the first stored entry with offset > `offset` (offsets increase along the ring). */
  private indexAfter(offset: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.offsets[this.at(mid)]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** A page of the range (since, until], oldest first; see HistoryRead. */
  read(q: HistoryRead, now: number): HistoryPage {
    this.trim(now);
    const end = q.until === undefined ? this.size : this.indexAfter(q.until);
    const begin = q.since === undefined ? Math.max(0, end - q.limit) : this.indexAfter(q.since);
    const last = Math.min(end, begin + Math.max(0, q.limit));
    const entries: HistoryEntry[] = [];
    let bytes = 0;
    let i = begin;
    for (; i < last; i++) {
      const length = this.lengths[this.at(i)]!;
      if (entries.length > 0 && bytes + length > q.maxBytes) break;
      entries.push(this.entryAt(i));
      bytes += length;
    }
    return { entries, more: i < last, available: Math.max(0, last - begin) };
  }

  /** The newest entry whose push `match`es, or undefined (for edits and deletes). */
  findNewest(match: (push: Buffer) => boolean): HistoryEntry | undefined {
    for (let i = this.size - 1; i >= 0; i--) {
      if (match(this.pushAt(this.at(i)))) return this.entryAt(i);
    }
    return undefined;
  }

  /** Replace a stored push (an edit or a delete's tombstone), charging the new size. */
  replace(entry: HistoryEntry, push: Buffer): void {
    if (entry.owner !== this) return;
    const i = this.indexAfter(entry.offset - 1);
    if (i >= this.size || this.offsets[this.at(i)] !== entry.offset) return; // removed since it was read
    const r = this.at(i);
    const cost = push.length + ENTRY_OVERHEAD;
    const delta = cost - (this.lengths[r]! + ENTRY_OVERHEAD);
    const kept = own(push);
    this.buffers[r] = kept;
    this.starts[r] = 0;
    this.lengths[r] = kept.length;
    this.bytes += delta;
    entry.cost = cost;
    entry.push = kept;
    this.budget.adjust(delta);
  }

  /** The newest `count` entries, oldest first (for small views such as channelstream's /info). */
  newest(count: number, now: number): HistoryEntry[] {
    this.trim(now);
    const entries: HistoryEntry[] = [];
    for (let i = Math.max(0, this.size - count); i < this.size; i++) entries.push(this.entryAt(i));
    return entries;
  }
}
