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
 * finds the lease gone. Losing the lease is final for this process: the
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
    const ms = this.value === null ? this.opts.pollMs : Math.max(50, Math.floor(this.opts.leaseMs / 3));
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
          this.validUntil = sentAt + this.opts.leaseMs;
          this.opts.log.info({ lease: v }, 'director lease acquired');
          this.emit('acquired', v);
        }
      } else {
        if (sentAt > this.validUntil) return this.lose('lease expired before it could be renewed');
        const ok = (await this.renew(this.key, this.value, this.opts.leaseMs)) === 1;
        if (!ok) return this.lose('lease taken over by another director');
        this.validUntil = sentAt + this.opts.leaseMs;
      }
    } catch (err) {
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

  /** Whether this process may act as the active director right now (holds the lease by its own clock). */
  get held(): boolean {
    return this.value !== null && performance.now() < this.validUntil;
  }

  private lose(reason: string): void {
    if (this.value === null) return;
    this.opts.log.error({ lease: this.value, reason }, 'director lease lost');
    this.value = null;
    this.stopped = true;
    this.emit('lost', reason);
  }

  /** Stop renewing; a held lease is released so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const v = this.value;
    this.value = null;
    if (v !== null) await this.release(this.key, v).catch(() => undefined);
  }
}
