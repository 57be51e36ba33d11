/**
 * How late this process' event loop runs: a timer every TICK_MS notes how
 * much later than due it fired. `lagMs()` is the larger of the last tick's
 * lateness and how far the current turn has run past the next tick's due
 * time, so a burst handled in one long turn (thousands of reconnecting
 * clients accepted at once) is seen while it is still going on, not only
 * afterwards.
 */
import { performance } from 'node:perf_hooks';

/** Between ticks, in ms: small enough to see a lag of a few tens of ms, one timer costs nothing. */
export const TICK_MS = 20;

export class LoopLag {
  private lastTick = performance.now();
  private lastLag = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly now: () => number = () => performance.now()) {}

  start(): void {
    if (this.timer) return;
    this.lastTick = this.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The tick's work; public for tests with a fake clock. */
  tick(): void {
    const t = this.now();
    this.lastLag = Math.max(0, t - this.lastTick - TICK_MS);
    this.lastTick = t;
  }

  /** Milliseconds the loop is (or last was) behind. */
  lagMs(): number {
    return Math.max(this.lastLag, this.now() - this.lastTick - TICK_MS);
  }
}
