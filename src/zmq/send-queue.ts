/**
 * A bounded queue in front of a zeromq.js socket. zeromq.js allows one send in
 * flight per socket; this serialises sends and bounds what waits. Callers push
 * and, when `full`, await `space()` before pushing more: that is how back
 * pressure reaches whoever feeds the queue (a receive loop stops reading, so
 * ZeroMQ's own high-water marks push back on the peer).
 *
 * A send to an XPUB with noDrop that finds a peer at its high-water mark is
 * refused (EAGAIN) and tried again after a short wait, so nothing is lost
 * while peers are slow.
 *
 * With `maxBlockMs`, a peer that stays full that long (a stalled node or
 * edge) no longer holds everyone back: the queue "sheds", sending on without
 * the full peers (noDrop off for that send: only they miss the message, and
 * libzmq then skips them until they have read their backlog down), until no
 * send has found a full peer for `maxBlockMs`. Only for streams whose
 * receivers detect what they missed (the director's offsets and ticks,
 * checked by edges).
 *
 * libzmq skips a peer that missed a message silently, also for later sends
 * with noDrop on, until that peer has read its backlog down, and never says
 * when that is. With `markShed`, each message sent without full peers is
 * followed at once by a marker also sent without them, before anything else:
 * a peer still skipped misses the marker too (a later one shows the gap), a
 * peer that caught up meanwhile gets it and learns from it what was shed.
 */
import type { Logger } from 'pino';

/** First and longest wait before a send refused at the high-water mark is tried again. */
const FULL_RETRY_MIN_MS = 1;
const FULL_RETRY_MAX_MS = 20;
/**
 * While the queue sheds, how long a send waits for a peer that is newly full
 * before going on without it. The stalled peer that started the shedding is
 * already skipped by libzmq, so a new refusal is another peer: most likely a
 * healthy one that is only momentarily full (it reads continuously and drains
 * in milliseconds), which must lose nothing; a slow peer that libzmq let back
 * in and that fills again costs the others at most this much each time.
 */
export const SHED_GRACE_MS = 250;

export interface Sendable {
  send(message: Buffer[] | Buffer): Promise<void>;
}

/** An XPUB: refuses a send at a full peer while noDrop is set, drops it for that peer when not. */
interface DropSwitch {
  noDrop: boolean;
}

/** A Counter's `collect` that adds what `read()` grew by since the last scrape (for counts kept as plain numbers). */
export function collectGrowth(read: () => number): (this: { inc(n: number): void }) => void {
  let seen = 0;
  return function collect(this: { inc(n: number): void }): void {
    const now = read();
    if (now > seen) this.inc(now - seen);
    seen = now;
  };
}

/** A message, or what builds it when its turn to be sent comes (a tick numbered in the order sent). */
export type Queued = Buffer[] | (() => Buffer[]);

export interface SendQueueOptions {
  /** How long a peer at its high-water mark may hold the queue before the queue sheds (0: forever). Needs an XPUB. */
  maxBlockMs?: number;
  /** The marker sent without full peers right after `shed` was (null: none). */
  markShed?: (shed: Buffer[]) => Buffer[] | null;
  /**
   * Most bytes (the frames' lengths) waiting here, besides `limit` messages:
   * for queues of batches, whose size in messages says little about their
   * size in bytes (undefined: no byte budget).
   */
  maxBytes?: number;
}

function sizeOf(message: Queued): number {
  // A builder (a tick numbered when sent) is a few dozen bytes.
  if (typeof message === 'function') return 0;
  let n = 0;
  for (const f of message) n += f.length;
  return n;
}

const isFull = (err: unknown): boolean => (err as { code?: unknown }).code === 'EAGAIN';

export class SendQueue {
  private queue: Queued[] = [];
  private head = 0;
  /** Bytes of the messages waiting (the one being sent included). */
  private queuedBytes = 0;
  private pumping = false;
  private waiters: Array<() => void> = [];
  private closed = false;
  sent = 0;
  failed = 0;
  /** Times a send found the peer at its high-water mark and waited. */
  fullWaits = 0;
  /** Messages sent on without the peers that were full (see maxBlockMs). */
  shed = 0;
  /** When the current shedding began; 0 while not shedding. */
  private sheddingSince = 0;
  private lastShedAt = 0;
  private readonly maxBlockMs: number;
  private readonly markShed: ((shed: Buffer[]) => Buffer[] | null) | null;
  /** Byte budget (Infinity: none). */
  readonly maxBytes: number;

  constructor(
    private readonly socket: Sendable,
    readonly limit: number,
    private readonly log: Logger,
    readonly name: string,
    opts: SendQueueOptions = {},
  ) {
    this.maxBlockMs = opts.maxBlockMs ?? 0;
    this.markShed = opts.markShed ?? null;
    this.maxBytes = opts.maxBytes ?? Infinity;
    // noDrop is write-only (libzmq cannot read XPUB_NODROP back): its presence is what tells an XPUB.
    if (this.maxBlockMs > 0 && !('noDrop' in socket)) throw new TypeError('maxBlockMs needs a socket with noDrop (an XPUB)');
  }

  get length(): number {
    return this.queue.length - this.head;
  }

  /** Bytes waiting to be sent. */
  get bytes(): number {
    return this.queuedBytes;
  }

  get full(): boolean {
    return this.length >= this.limit || this.queuedBytes >= this.maxBytes;
  }

  /** Whether the queue is sending on without a peer that stayed full. */
  get shedding(): boolean {
    return this.sheddingSince > 0;
  }

  /**
   * Queue a message. Returns false (and queues nothing) when full or closed.
   * `admitted`: the caller counted its room already (see DownBatcher), so
   * only a closed queue refuses it.
   */
  push(message: Queued, admitted = false): boolean {
    if (this.closed || (this.full && !admitted)) return false;
    this.queue.push(message);
    this.queuedBytes += sizeOf(message);
    if (!this.pumping) void this.pump();
    return true;
  }

  /** Resolves when the queue has room again. */
  space(): Promise<void> {
    if (!this.full || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Resolves when everything queued has been handed to ZeroMQ. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
    for (const w of this.waiters.splice(0)) w();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.head < this.queue.length && !this.closed) {
        const queued = this.queue[this.head]!;
        await this.sendOne(typeof queued === 'function' ? queued() : queued);
        if (this.closed) break;
        // Taken off the queue only once sent, so `length` and drain() count it until then (a message's frames
        // do not change while it waits: its size is read again rather than kept beside it).
        (this.queue as unknown[])[this.head] = undefined;
        this.queuedBytes -= sizeOf(queued);
        this.head++;
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.head);
          this.head = 0;
        }
        if (this.waiters.length > 0 && !this.full) {
          for (const w of this.waiters.splice(0)) w();
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Send one message, waiting while a peer is at its high-water mark. An XPUB
   * with noDrop refuses such a send with EAGAIN instead of blocking, and never
   * reports when it could send again (libzmq's XPUB always polls writable), so
   * the same message is tried again after a short, growing wait: nothing is
   * dropped and the order is kept. Past maxBlockMs (SHED_GRACE_MS while
   * shedding) it goes out without the full peers.
   */
  private async sendOne(msg: Buffer[]): Promise<void> {
    let wait = FULL_RETRY_MIN_MS;
    const since = Date.now();
    for (;;) {
      try {
        await this.socket.send(msg);
        this.sent++;
        if (this.shedding && Date.now() - this.lastShedAt >= this.maxBlockMs) this.stopShedding();
        return;
      } catch (err) {
        if (this.closed) return;
        if (!isFull(err)) {
          this.failed++;
          this.log.error({ err, queue: this.name }, 'zeromq send failed');
          return;
        }
        this.fullWaits++;
        const patience = this.shedding ? Math.min(this.maxBlockMs, SHED_GRACE_MS) : this.maxBlockMs;
        if (this.maxBlockMs > 0 && Date.now() - since >= patience) {
          await this.sendWithoutFullPeers(msg);
          return;
        }
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, FULL_RETRY_MAX_MS);
      }
    }
  }

  /** Send once with noDrop off: peers with room get the message, full ones miss it. */
  private async sendWithoutFullPeers(msg: Buffer[]): Promise<void> {
    const now = Date.now();
    if (!this.shedding) this.startShedding(now);
    this.lastShedAt = now;
    const xpub = this.socket as Sendable & DropSwitch;
    xpub.noDrop = false;
    try {
      await xpub.send(msg);
      this.sent++;
      this.shed++;
      // Before anything else goes out: a peer skipped for `msg` is most likely skipped for this too.
      const marker = this.markShed?.(msg);
      if (marker && !this.closed) {
        await xpub.send(marker);
        this.sent++;
      }
    } catch (err) {
      if (!this.closed) {
        this.failed++;
        this.log.error({ err, queue: this.name }, 'zeromq send failed');
      }
    } finally {
      if (!this.closed) xpub.noDrop = true;
    }
  }

  private startShedding(now: number): void {
    this.sheddingSince = now;
    this.log.warn({ queue: this.name, maxBlockMs: this.maxBlockMs }, 'a peer stayed at its high-water mark: sending on without it (its edges will see a gap)');
  }

  private stopShedding(): void {
    this.log.warn({ queue: this.name, forMs: Date.now() - this.sheddingSince, shed: this.shed }, 'every peer keeps up again: sends wait for full peers again');
    this.sheddingSince = 0;
  }
}
