/**
 * The redis engine: every channel's sequence and history in Redis, sequenced
 * by Lua scripts (redis-scripts.ts) that check the caller's lease value
 * first. One connection carries every call in issue order (ioredis pipelines
 * what is issued in one tick), so answers come back in the order the offsets
 * were assigned. Commands are never re-sent after a dropped connection: an
 * append whose answer was lost fails (the message may be stored: edges see
 * the offset as a gap and recover it from history), never runs twice.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ErrorCodes, TidingsError } from '../../protocol/errors.js';
import type { AppendRequest, HistoryPage, HistoryQuery, RecordKind, StateEngine, StoredMessage, StreamPosition } from './engine.js';
import { APPEND, HISTORY, POSITION, REWRITE, SAVE } from './redis-scripts.js';
import { ENTRY_OVERHEAD } from '../history.js';

export interface RedisEngineOptions {
  url: string;
  /** Prefix of every key, so several clusters (or shards) can share one Redis. */
  prefix: string;
  /** Channel keys expire this long after their last append or creation. */
  keepMs: number;
  /** Bytes of history over every channel (history_total_bytes); past it the oldest message goes first. */
  totalBytes: number;
  /** Acknowledge appends only once this many replicas have them (WAIT); 0: when the master has them. */
  replicasAck?: number;
  /** How long WAIT waits for the replicas, in ms. */
  replicasTimeoutMs?: number;
  log: Logger;
}

type ScriptFn = (...args: Array<string | number | Buffer>) => Promise<unknown>;

/** Epochs are 8 base64url characters from a pooled random buffer. */
class EpochSource {
  private pool = Buffer.alloc(0);
  private at = 0;
  next(): string {
    if (this.at + 6 > this.pool.length) {
      this.pool = randomBytes(6 * 512);
      this.at = 0;
    }
    const s = this.pool.subarray(this.at, this.at + 6).toString('base64url');
    this.at += 6;
    return s;
  }
}

/** Turn a Redis error into the catalog: FENCED is 156, anything else 157. */
function engineError(err: unknown): TidingsError {
  if (err instanceof TidingsError) return err;
  const msg = (err as Error)?.message ?? String(err);
  if (msg.startsWith('FENCED')) return new TidingsError(ErrorCodes.FENCED, msg.slice(7));
  // maxRetriesPerRequest 0 (createRedisClient): the connection closed with the command in flight or queued.
  if ((err as Error)?.name === 'MaxRetriesPerRequestError') return new TidingsError(ErrorCodes.STATE_UNAVAILABLE, 'the connection to Redis closed before it answered');
  return new TidingsError(ErrorCodes.STATE_UNAVAILABLE, msg);
}

/**
 * `redis://[:password@]host:port[/db]`, `rediss://...` (TLS), or
 * `redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/db]`:
 * ask those Sentinels for the master and follow it when they promote another.
 */
export function parseRedisUrl(url: string): { url: string } | { sentinels: Array<{ host: string; port: number }>; name: string; password?: string; db: number } {
  const m = /^redis\+sentinel:\/\/(?:(?:[^:@/]*):([^@/]*)@)?([^/]+)\/([^/]+)(?:\/(\d+))?$/.exec(url);
  if (!m) {
    if (!/^rediss?:\/\/\S+$/.test(url)) throw new Error('a redis:// , rediss:// or redis+sentinel://host:port[,host:port]/<master> URL');
    return { url };
  }
  const sentinels = m[2]!.split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    const port = i < 0 ? 26379 : Number(hp.slice(i + 1));
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`bad sentinel address ${hp}`);
    return { host: i < 0 ? hp : hp.slice(0, i), port };
  });
  return { sentinels, name: decodeURIComponent(m[3]!), ...(m[1] ? { password: decodeURIComponent(m[1]) } : {}), db: Number(m[4] ?? 0) };
}

export function createRedisClient(url: string, name: string): Redis {
  const options = {
    connectionName: name,
    enableAutoPipelining: true,
    // A command whose connection dropped fails instead of being sent again (an append must never run twice).
    autoResendUnfulfilledCommands: false,
    // 0: every close fails the commands in flight and queued, at once. With more, ioredis (6.0.0) keeps the
    // commands in flight aside for a resend and, when the first reconnect succeeds (Redis back within the
    // 50 ms retry delay), drops them without settling them (redis/ioredis#2193): their promises never
    // settle and, with auto-pipelining, every later command waits behind their pipeline, for good.
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    // Redis loading its data (a restart reading its AOF) is asked again every 100 ms, not after its loading
    // estimate (1 s at least, up to 10 s): the director answers again as soon as Redis can.
    maxLoadingRetryTime: 100,
    retryStrategy: (times: number) => Math.min(50 * times, 500),
    lazyConnect: true,
  };
  const target = parseRedisUrl(url);
  if ('url' in target) return new Redis(target.url, options);
  return new Redis({ ...options, sentinels: target.sentinels, name: target.name, db: target.db, ...(target.password ? { password: target.password } : {}), sentinelRetryStrategy: (times: number) => Math.min(100 * times, 1000) });
}

export class RedisEngine implements StateEngine {
  readonly kind = 'redis' as const;
  readonly redis: Redis;
  /** This director's lease value; every write carries it. Set by the lease when it is won. */
  fence = '';
  private readonly epochs = new EpochSource();
  /** Appends waiting for the next WAIT (one per event-loop turn covers every write before it on this connection). */
  private replicationWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private waitScheduled = false;
  private readonly scripts: Record<'append' | 'position' | 'history' | 'rewrite' | 'save', ScriptFn>;
  readonly leaseKey: string;
  /** Every stored message in the order stored, and the total's counters (redis-scripts.ts). */
  private readonly allKey: string;
  private readonly totalKey: string;

  constructor(private readonly opts: RedisEngineOptions) {
    this.redis = createRedisClient(opts.url, 'tidings-engine');
    this.redis.on('error', (err: Error) => opts.log.warn({ err: err.message }, 'redis connection error'));
    this.leaseKey = `${opts.prefix}:lease`;
    this.allKey = `${opts.prefix}:hall`;
    this.totalKey = `${opts.prefix}:htotal`;
    const define = (name: string, lua: string, keys: number, buffers = false): ScriptFn => {
      this.redis.defineCommand(name, { lua, numberOfKeys: keys });
      const fn = (this.redis as unknown as Record<string, ScriptFn>)[buffers ? `${name}Buffer` : name]!;
      return fn.bind(this.redis);
    };
    this.scripts = {
      append: define('tidingsAppend', APPEND, 5),
      position: define('tidingsPosition', POSITION, 3),
      // Buffer replies: pushes come back as the bytes stored, never decoded and encoded again.
      history: define('tidingsHistory', HISTORY, 4, true),
      rewrite: define('tidingsRewrite', REWRITE, 5),
      save: define('tidingsSave', SAVE, 2),
    };
  }

  /** Resolves once Redis answers; until then (Redis starting, unreachable) it keeps trying and says so every 5 s. */
  async start(): Promise<void> {
    if (this.redis.status === 'wait') void this.redis.connect().catch(() => undefined);
    const since = Date.now();
    while (this.redis.status !== 'ready') {
      if (this.redis.status === 'end') throw new TidingsError(ErrorCodes.STATE_UNAVAILABLE, 'redis connection closed');
      await new Promise((r) => setTimeout(r, 50));
      if (Date.now() - since > 5000) {
        this.opts.log.warn({ status: this.redis.status }, 'waiting for redis');
        return this.start();
      }
    }
  }

  async stop(): Promise<void> {
    this.redis.disconnect(false);
  }

  private channelKey(channel: string): string {
    return `${this.opts.prefix}:c:${channel}`;
  }

  private historyKey(channel: string): string {
    return `${this.opts.prefix}:h:${channel}`;
  }

  async append(req: AppendRequest): Promise<StreamPosition> {
    const { channel, limits } = req;
    try {
      const r = (await this.scripts.append(
        this.leaseKey,
        this.channelKey(channel),
        this.historyKey(channel),
        this.allKey,
        this.totalKey,
        this.fence,
        req.now,
        req.head,
        req.tail,
        req.store ? 1 : 0,
        limits.maxCount,
        limits.maxAgeMs,
        limits.maxBytes,
        this.epochs.next(),
        Math.max(this.opts.keepMs, limits.maxAgeMs),
        ENTRY_OVERHEAD,
        this.opts.totalBytes,
        this.opts.prefix,
        channel,
      )) as [number, string];
      await this.replicated();
      return { offset: Number(r[0]), epoch: r[1] };
    } catch (err) {
      throw engineError(err);
    }
  }

  /**
   * Resolves once `replicasAck` replicas have every write made so far on this
   * connection (at once when 0). One WAIT per event-loop turn serves every
   * append answered in that turn, in order.
   */
  replicated(): Promise<void> {
    const n = this.opts.replicasAck ?? 0;
    if (n === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.replicationWaiters.push({ resolve, reject });
      if (this.waitScheduled) return;
      this.waitScheduled = true;
      setImmediate(() => {
        this.waitScheduled = false;
        const batch = this.replicationWaiters;
        this.replicationWaiters = [];
        this.redis.wait(n, this.opts.replicasTimeoutMs ?? 1000).then(
          (got) => {
            if (got >= n) for (const w of batch) w.resolve();
            else for (const w of batch) w.reject(new TidingsError(ErrorCodes.STATE_UNAVAILABLE, `only ${got} of ${n} Redis replicas acknowledged in time`));
          },
          (err: Error) => {
            for (const w of batch) w.reject(engineError(err));
          },
        );
      });
    });
  }

  async position(channel: string, now: number): Promise<StreamPosition> {
    try {
      const r = (await this.scripts.position(this.leaseKey, this.channelKey(channel), this.historyKey(channel), this.fence, now, this.epochs.next(), this.opts.keepMs)) as [number, string];
      return { offset: Number(r[0]), epoch: r[1] };
    } catch (err) {
      throw engineError(err);
    }
  }

  async history(channel: string, q: HistoryQuery): Promise<HistoryPage> {
    let r: Array<Buffer | number>;
    try {
      r = (await this.scripts.history(
        this.channelKey(channel),
        this.historyKey(channel),
        this.allKey,
        this.totalKey,
        q.since === undefined ? '' : q.since,
        q.until === undefined ? '' : q.until,
        Math.max(0, q.limit),
        q.maxBytes,
        q.now,
        q.ttlMs,
        ENTRY_OVERHEAD,
        channel,
      )) as Array<Buffer | number>;
    } catch (err) {
      throw engineError(err);
    }
    const messages: StoredMessage[] = [];
    for (let i = 5; i + 1 < r.length; i += 2) {
      const m = r[i + 1] as Buffer;
      const colon = m.indexOf(0x3a);
      messages.push({ offset: Number(r[i]), time: Number(m.subarray(0, colon).toString('latin1')), push: m.subarray(colon + 1) });
    }
    return { offset: Number(r[0]), epoch: r[1]!.toString(), oldest: Number(r[2]), more: Number(r[3]) === 1, available: Number(r[4]), messages };
  }

  async rewrite(channel: string, offset: number, push: Buffer): Promise<boolean> {
    try {
      const r = await this.scripts.rewrite(
        this.leaseKey,
        this.channelKey(channel),
        this.historyKey(channel),
        this.allKey,
        this.totalKey,
        this.fence,
        offset,
        push,
        ENTRY_OVERHEAD,
        channel,
        this.opts.totalBytes,
        this.opts.prefix,
      );
      return r === 1;
    } catch (err) {
      throw engineError(err);
    }
  }

  /** Bytes and messages of history over every channel, and messages evicted by the total bound (metrics). */
  async totals(): Promise<{ bytes: number; messages: number; evicted: number }> {
    const [[, t], [, n]] = (await this.redis.multi().hmget(this.totalKey, 'b', 'evicted').zcard(this.allKey).exec()) as [[null, Array<string | null>], [null, number]];
    return { bytes: Number(t[0] ?? 0), messages: n, evicted: Number(t[1] ?? 0) };
  }

  private recordsKey(kind: RecordKind): string {
    return `${this.opts.prefix}:r:${kind}`;
  }

  async save(kind: RecordKind, records: ReadonlyMap<string, unknown>): Promise<void> {
    if (records.size === 0) return;
    const args: string[] = [];
    for (const [id, value] of records) args.push(id, value === null ? '' : JSON.stringify(value));
    try {
      await this.scripts.save(this.leaseKey, this.recordsKey(kind), this.fence, ...args);
    } catch (err) {
      throw engineError(err);
    }
  }

  async load(kind: RecordKind): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    let all: Record<string, string>;
    try {
      all = await this.redis.hgetall(this.recordsKey(kind));
    } catch (err) {
      throw engineError(err);
    }
    for (const [id, json] of Object.entries(all)) out.set(id, JSON.parse(json) as unknown);
    return out;
  }
}
