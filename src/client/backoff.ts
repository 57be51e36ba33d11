/**
 * Reconnect delays with Autobahn's parameters (seconds, as in Autobahn).
 *
 * The n-th retry (n = 0 for the first) waits
 *   base(n)  = min(maxRetryDelay, initialRetryDelay * retryDelayGrowth ** n)
 *   delay(n) = base(n) * (1 - retryDelayJitter * r),  r uniform in [0, 1)
 * so `retryDelayJitter` is the fraction of the base delay that may be taken
 * away at random: 0 gives the exact exponential sequence, 1 is "full jitter"
 * (uniform in [0, base)), 0.1 (the default) keeps every delay within 10 % below
 * its base. Jitter only ever shortens a delay, so maxRetryDelay is a hard cap,
 * and clients that lost the same server spread out instead of reconnecting in
 * lock step.
 */

export interface RetryOptions {
  /** Retries after a failure before giving up; -1 retries forever. */
  maxRetries: number;
  /** Seconds before the first retry. */
  initialRetryDelay: number;
  /** Largest delay in seconds. */
  maxRetryDelay: number;
  /** Factor applied to the delay after each failed attempt. */
  retryDelayGrowth: number;
  /** Fraction (0..1) of each delay that may be removed at random. */
  retryDelayJitter: number;
}

export const DEFAULT_RETRY: Readonly<RetryOptions> = Object.freeze({
  maxRetries: -1,
  initialRetryDelay: 1,
  maxRetryDelay: 60,
  retryDelayGrowth: 1.5,
  retryDelayJitter: 0.1,
});

/** Throws a RangeError naming the first bad parameter. */
export function checkRetryOptions(o: RetryOptions): void {
  if (!Number.isInteger(o.maxRetries) || o.maxRetries < -1) throw new RangeError('maxRetries must be an integer >= -1');
  if (!(o.initialRetryDelay >= 0)) throw new RangeError('initialRetryDelay must be >= 0 seconds');
  if (!(o.maxRetryDelay >= o.initialRetryDelay)) throw new RangeError('maxRetryDelay must be >= initialRetryDelay');
  if (!(o.retryDelayGrowth >= 1)) throw new RangeError('retryDelayGrowth must be >= 1');
  if (!(o.retryDelayJitter >= 0 && o.retryDelayJitter <= 1)) throw new RangeError('retryDelayJitter must be between 0 and 1');
}

/** The delay before jitter of retry `n` (0-based), in seconds. */
export function baseRetryDelay(n: number, o: RetryOptions): number {
  // Capped before it can overflow to Infinity for large n.
  const grown = o.initialRetryDelay * Math.pow(o.retryDelayGrowth, Math.min(n, 1000));
  return Math.min(o.maxRetryDelay, grown);
}

/** Smallest and largest possible delay of retry `n`, in seconds. */
export function retryDelayBounds(n: number, o: RetryOptions): { min: number; max: number } {
  const base = baseRetryDelay(n, o);
  return { min: base * (1 - o.retryDelayJitter), max: base };
}

/** The delay of retry `n` in seconds; `random` returns a number in [0, 1). */
export function retryDelay(n: number, o: RetryOptions, random: () => number = Math.random): number {
  return baseRetryDelay(n, o) * (1 - o.retryDelayJitter * random());
}

/** Whether retry `n` (0-based) is allowed. */
export function mayRetry(n: number, o: RetryOptions): boolean {
  return o.maxRetries === -1 || n < o.maxRetries;
}
