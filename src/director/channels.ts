/**
 * The director's per-channel state: sequence (offset, epoch) and bounded
 * history. A channel's epoch is new each time its state is created, so a
 * position from before a restart or a collection never passes as current.
 */
import { randomBytes, randomUUID } from 'node:crypto';

export interface HistoryEntry {
  offset: number;
  time: number;
  /** The encoded client push. */
  push: Buffer;
}

export interface ChannelOptions {
  historySize: number;
  historyTtlMs: number;
}

export class ChannelState {
  offset = 0;
  readonly epoch: string;
  /** channelstream's channel uuid: made when the channel's state is. */
  readonly uuid = randomUUID();
  lastActive: number;
  private ring: HistoryEntry[] = [];
  private start = 0;

  constructor(
    readonly name: string,
    public options: ChannelOptions,
    now: number,
  ) {
    this.epoch = randomBytes(6).toString('base64url');
    this.lastActive = now;
  }

  next(now: number): number {
    this.lastActive = now;
    return ++this.offset;
  }

  remember(entry: HistoryEntry): void {
    const size = this.options.historySize;
    if (size <= 0) return;
    this.ring.push(entry);
    if (this.ring.length - this.start > size) this.start++;
    if (this.start > 256 && this.start * 2 > this.ring.length) {
      this.ring = this.ring.slice(this.start);
      this.start = 0;
    }
  }

  /** Drops entries older than the time-to-live. */
  expire(now: number): void {
    const ttl = this.options.historyTtlMs;
    if (ttl <= 0) return;
    while (this.start < this.ring.length && now - this.ring[this.start]!.time > ttl) this.start++;
  }

  get historyLength(): number {
    return this.ring.length - this.start;
  }

  /** Entries with offset > since, oldest first, at most limit. */
  since(since: number, limit: number, now: number): HistoryEntry[] {
    this.expire(now);
    const out: HistoryEntry[] = [];
    for (let i = this.start; i < this.ring.length && out.length < limit; i++) {
      const e = this.ring[i]!;
      if (e.offset > since) out.push(e);
    }
    return out;
  }

  /** The newest `limit` entries, oldest first. */
  latest(limit: number, now: number): HistoryEntry[] {
    this.expire(now);
    return this.ring.slice(Math.max(this.start, this.ring.length - limit));
  }

  /** The oldest offset still in history, or offset+1 when empty. */
  get oldestOffset(): number {
    return this.start < this.ring.length ? this.ring[this.start]!.offset : this.offset + 1;
  }
}

export class ChannelRegistry {
  private channels = new Map<string, ChannelState>();

  constructor(private readonly defaults: ChannelOptions) {}

  get size(): number {
    return this.channels.size;
  }

  get(name: string): ChannelState | undefined {
    return this.channels.get(name);
  }

  getOrCreate(name: string, now: number): ChannelState {
    let c = this.channels.get(name);
    if (!c) {
      c = new ChannelState(name, { ...this.defaults }, now);
      this.channels.set(name, c);
    }
    return c;
  }

  names(): IterableIterator<string> {
    return this.channels.keys();
  }

  /**
   * Forget channels idle longer than `idleMs` whose history has expired and
   * that no edge holds (`isHeld`), so memory does not grow with every channel
   * ever used.
   */
  collect(now: number, idleMs: number, isHeld: (name: string) => boolean): number {
    let removed = 0;
    for (const [name, c] of this.channels) {
      c.expire(now);
      if (now - c.lastActive < idleMs) continue;
      if (c.historyLength > 0 || isHeld(name)) continue;
      this.channels.delete(name);
      removed++;
    }
    return removed;
  }
}
