/**
 * The active director's lease in Redis. A standby tries to take it every
 * `pollMs`; the holder renews it every leaseMs/3. Taking it increments a
 * fencing counter, and the lease value "<token>|<node>" is what every write
 * of the engine carries: Redis refuses writes whose value is not the lease
 * key's (redis-scripts.ts), so a holder that was paused past its lease can
 * never sequence again, even before it notices.
 *
 * The holder also keeps a local deadline (time of the last successful renewal
 * request + leaseMs, on this process' monotonic clock, which is never later
 * than Redis' own expiry) and reports `lost` when it passes or when a renewal
 * finds the lease gone. The deadline has a timer of its own: a renewal that
 * gets no answer at all (Redis paused, a network that drops packets without
 * closing the connection) must not keep this process acting as the active
 * director after a standby may have taken over. A renewal that failed is tried
 * again soon (leaseMs/10), not a third of a lease later, so an outage shorter
 * than most of the lease keeps it. Losing the lease is final for this process: the
 * director stops (see director.ts), its supervisor starts it again as a standby.
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ACQUIRE, RELEASE, RENEW } from './redis-scripts.js';

export interface LeaseOptions {
  redis: Redis;
  prefix: string;
  node: string;
  leaseMs: number;
  pollMs: number;
  log: Logger;
  /** A request that failed (Redis unreachable, a bug): counted by the caller's loop guard; the lease goes on trying. */
  failed?: (err: unknown) => void;
}

type Fn = (...args: Array<string | number>) => Promise<unknown>;

export interface DirectorLeaseEvents {
  acquired: [value: string];
  lost: [reason: string];
}

export class DirectorLease extends EventEmitter<DirectorLeaseEvents> {
  /** The lease value while held, else null. */
  value: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  /** The last request failed: the next one goes sooner. */
  private retrying = false;
  private validUntil = 0;
  private stopped = false;
  private busy = false;
  private readonly acquire: Fn;
  private readonly renew: Fn;
  private readonly release: Fn;
  readonly key: string;
  private readonly fenceKey: string;

  constructor(private readonly opts: LeaseOptions) {
    super();
    this.key = `${opts.prefix}:lease`;
    this.fenceKey = `${opts.prefix}:fence`;
    const define = (name: string, lua: string, keys: number): Fn => {
      opts.redis.defineCommand(name, { lua, numberOfKeys: keys });
      return ((opts.redis as unknown as Record<string, Fn>)[name] as Fn).bind(opts.redis);
    };
    this.acquire = define('tidingsAcquire', ACQUIRE, 2);
    this.renew = define('tidingsRenew', RENEW, 1);
    this.release = define('tidingsRelease', RELEASE, 1);
  }

  /** The fencing token of the held lease (the counter value), or 0. */
  get token(): number {
    return this.value === null ? 0 : Number(this.value.slice(0, this.value.indexOf('|')));
  }

  start(): void {
    void this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    const ms = this.value === null ? this.opts.pollMs : Math.max(50, Math.floor(this.opts.leaseMs / (this.retrying ? 10 : 3)));
    this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.busy) return;
    this.busy = true;
    const sentAt = performance.now();
    try {
      if (this.value === null) {
        const v = (await this.acquire(this.key, this.fenceKey, this.opts.node, this.opts.leaseMs)) as string | null;
        if (v && !this.stopped) {
          this.value = v;
          this.extend(sentAt);
          this.opts.log.info({ lease: v }, 'director lease acquired');
          this.emit('acquired', v);
        }
      } else {
        if (sentAt > this.validUntil) return this.lose('lease expired before it could be renewed');
        const ok = (await this.renew(this.key, this.value, this.opts.leaseMs)) === 1;
        if (!ok) return this.lose('lease taken over by another director');
        this.extend(sentAt);
      }
      this.retrying = false;
    } catch (err) {
      this.retrying = true;
      this.opts.failed?.(err);
      // maxRetriesPerRequest 0: ioredis words a connection that closed with the request in flight as a retry limit.
      const reason = (err as Error)?.name === 'MaxRetriesPerRequestError' ? 'the connection to Redis closed before it answered' : (err as Error)?.message;
      this.opts.log.warn({ err: reason }, 'lease request failed');
      if (this.value !== null && performance.now() > this.validUntil) return this.lose('lease expired while Redis did not answer');
    } finally {
      this.busy = false;
      this.schedule();
    }
  }

  /** The lease holds until leaseMs after `sentAt` (when the request that renewed it was sent), by this process' clock. */
  private extend(sentAt: number): void {
    this.validUntil = sentAt + this.opts.leaseMs;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      if (this.value !== null && performance.now() >= this.validUntil) this.lose('lease expired while Redis did not answer');
    }, Math.max(0, Math.ceil(this.validUntil - performance.now())) + 1);
  }

  /** Whether this process may act as the active director right now (holds the lease by its own clock). */
  get held(): boolean {
    return this.value !== null && performance.now() < this.validUntil;
  }

  private lose(reason: string): void {
    if (this.value === null) return;
    this.opts.log.error({ lease: this.value, reason }, 'director lease lost');
    this.value = null;
    this.stopped = true;
    if (this.deadline) clearTimeout(this.deadline);
    if (this.timer) clearTimeout(this.timer);
    this.emit('lost', reason);
  }

  /** Stop renewing; a held lease is released so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.deadline) clearTimeout(this.deadline);
    const v = this.value;
    this.value = null;
    if (v !== null) await this.release(this.key, v).catch(() => undefined);
  }
}
