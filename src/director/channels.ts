/**
 * The director's per-channel state: sequence (offset, epoch) and bounded
 * history (history.ts). A channel's epoch is new each time its state is
 * created, so a position from before a restart or a collection never passes
 * as current.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ChannelHistory, HistoryBudget, type HistoryLimits } from './history.js';

export class ChannelState {
  offset = 0;
  readonly epoch: string;
  /** channelstream's channel uuid: made when the channel's state is. */
  readonly uuid = randomUUID();
  lastActive: number;
  readonly history: ChannelHistory;

  constructor(
    readonly name: string,
    limits: HistoryLimits,
    budget: HistoryBudget,
    now: number,
  ) {
    this.epoch = randomBytes(6).toString('base64url');
    this.lastActive = now;
    this.history = new ChannelHistory(limits, budget);
  }

  next(now: number): number {
    this.lastActive = now;
    return ++this.offset;
  }

  /** The oldest offset still in history, or offset + 1 when it is empty. */
  get oldestOffset(): number {
    return this.history.oldestOffset ?? this.offset + 1;
  }

  /** Whether history holds every message after `since` (so a recovery from there is complete). */
  coversSince(since: number): boolean {
    return this.oldestOffset <= since + 1;
  }
}

export class ChannelRegistry {
  private channels = new Map<string, ChannelState>();

  constructor(
    private readonly defaults: HistoryLimits,
    readonly budget: HistoryBudget,
  ) {}

  get size(): number {
    return this.channels.size;
  }

  get(name: string): ChannelState | undefined {
    return this.channels.get(name);
  }

  getOrCreate(name: string, now: number): ChannelState {
    let c = this.channels.get(name);
    if (!c) {
      c = new ChannelState(name, { ...this.defaults }, this.budget, now);
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
      c.history.trim(now);
      if (now - c.lastActive < idleMs) continue;
      if (c.history.length > 0 || isHeld(name)) continue;
      this.channels.delete(name);
      removed++;
    }
    return removed;
  }
}
