/**
 * What keeps one bad item from stopping a loop that serves others (a socket's
 * receive loop, a dispatch to listeners, a command handler's reply): each
 * item's failure is caught, counted in `tidings_loop_failures_total{loop}`,
 * logged at most once per LOG_EVERY_MS per loop (with how many were not
 * logged), and skipped. A loop that ends anyway while its service is not
 * stopping is a death: logged as fatal and reported once to `onDeath`, whose
 * owner takes readiness down and ends the process so its supervisor restarts
 * it (see docs/operations.md).
 */
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';

/** Exit code of a process whose serving loop died (docs/operations.md); its supervisor restarts it. */
export const EXIT_LOOP_DIED = 3;

export type DeathHandler = (loop: string, err: unknown) => void;

/** One log line per loop per this many ms at most; the rest are counted. */
export const LOG_EVERY_MS = 10_000;

/**
 * At most one log line per key per LOG_EVERY_MS: `take` says whether to log
 * now and how many lines of that key were skipped since the last one.
 */
export class LogLimiter {
  private readonly last = new Map<string, { at: number; skipped: number }>();
  constructor(private readonly now: () => number = Date.now) {}

  take(key: string): { log: boolean; skipped: number } {
    const t = this.now();
    const last = this.last.get(key);
    if (last && t - last.at < LOG_EVERY_MS) {
      last.skipped++;
      return { log: false, skipped: 0 };
    }
    this.last.set(key, { at: t, skipped: 0 });
    return { log: true, skipped: last?.skipped ?? 0 };
  }
}

const counters = new WeakMap<Registry, Counter<'loop'>>();

/** The one failures counter of a registry (the director and the forwarder share the node's). */
function failuresCounter(registry: Registry): Counter<'loop'> {
  let c = counters.get(registry);
  if (!c) {
    c = new Counter({
      name: 'tidings_loop_failures_total',
      help: 'Items a serving loop failed on, counted and skipped (should stay 0), by loop',
      labelNames: ['loop'],
      registers: [registry],
    });
    counters.set(registry, c);
  }
  return c;
}

export class LoopGuard {
  private readonly failures: Counter<'loop'>;
  private readonly limiter: LogLimiter;
  /** The first loop that died, or null. */
  dead: string | null = null;

  constructor(
    registry: Registry,
    private readonly log: Logger,
    private readonly onDeath: DeathHandler = () => undefined,
    now: () => number = Date.now,
  ) {
    this.failures = failuresCounter(registry);
    this.limiter = new LogLimiter(now);
  }

  /** One item failed: count it and log it (rate-limited); the caller skips it. */
  failed(loop: string, err: unknown, context: Record<string, unknown> = {}): void {
    this.failures.inc({ loop });
    const { log, skipped } = this.limiter.take(loop);
    if (log) this.log.error({ loop, err, ...context, ...(skipped > 0 ? { notLogged: skipped } : {}) }, 'item failed and was skipped');
  }

  /** A loop ended while its service was not stopping. Reported once. */
  died(loop: string, err: unknown): void {
    if (this.dead !== null) return;
    this.dead = loop;
    this.log.fatal({ loop, err }, 'a serving loop died');
    this.onDeath(loop, err);
  }

  /**
   * Serve `source` item by item: a throwing (or rejecting) `handle` is a
   * failed item, the loop goes on. When the source ends or throws while
   * `stopping()` is false, the loop has died.
   */
  async run<T>(loop: string, source: AsyncIterable<T>, handle: (item: T) => unknown, stopping: () => boolean): Promise<void> {
    try {
      for await (const item of source) {
        try {
          const r = handle(item);
          // Only a handler that must wait (back pressure) returns a promise; the hot path does not.
          if (r instanceof Promise) await r;
        } catch (err) {
          this.failed(loop, err);
        }
      }
      if (!stopping()) this.died(loop, new Error('the socket stopped delivering messages'));
    } catch (err) {
      if (!stopping()) this.died(loop, err);
    }
  }
}
