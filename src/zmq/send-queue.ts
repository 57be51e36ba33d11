/**
 * A bounded queue in front of a zeromq.js socket. zeromq.js allows one send in
 * flight per socket; this serialises sends and bounds what waits. Callers push
 * and, when `full`, await `space()` before pushing more: that is how back
 * pressure reaches whoever feeds the queue (a receive loop stops reading, so
 * ZeroMQ's own high-water marks push back on the peer).
 */
import type { Logger } from 'pino';

/** First and longest wait before a send refused at the high-water mark is tried again. */
const FULL_RETRY_MIN_MS = 1;
const FULL_RETRY_MAX_MS = 20;

export interface Sendable {
  send(message: Buffer[] | Buffer): Promise<void>;
}

export class SendQueue {
  private queue: Buffer[][] = [];
  private head = 0;
  private pumping = false;
  private waiters: Array<() => void> = [];
  private closed = false;
  sent = 0;
  failed = 0;
  /** Times a send found the peer at its high-water mark and waited. */
  fullWaits = 0;

  constructor(
    private readonly socket: Sendable,
    readonly limit: number,
    private readonly log: Logger,
    private readonly name: string,
  ) {}

  get length(): number {
    return this.queue.length - this.head;
  }

  get full(): boolean {
    return this.length >= this.limit;
  }

  /** Queue a message. Returns false (and queues nothing) when full or closed. */
  push(message: Buffer[]): boolean {
    if (this.closed || this.full) return false;
    this.queue.push(message);
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
    for (const w of this.waiters.splice(0)) w();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.head < this.queue.length && !this.closed) {
        const msg = this.queue[this.head]!;
        await this.sendOne(msg);
        if (this.closed) break;
        // Taken off the queue only once sent, so `length` and drain() count it until then.
        (this.queue as unknown[])[this.head] = undefined;
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
   * Send one message, waiting while the peer is at its high-water mark. An
   * XPUB with noDrop refuses such a send with EAGAIN instead of blocking, and
   * never reports when it could send again (libzmq's XPUB always polls
   * writable), so the same message is tried again after a short, growing wait:
   * nothing is dropped and the order is kept.
   */
  private async sendOne(msg: Buffer[]): Promise<void> {
    let wait = FULL_RETRY_MIN_MS;
    for (;;) {
      try {
        await this.socket.send(msg);
        this.sent++;
        return;
      } catch (err) {
        if (this.closed) return;
        if ((err as { code?: unknown }).code === 'EAGAIN') {
          this.fullWaits++;
          await new Promise((r) => setTimeout(r, wait));
          wait = Math.min(wait * 2, FULL_RETRY_MAX_MS);
          continue;
        }
        this.failed++;
        this.log.error({ err, queue: this.name }, 'zeromq send failed');
        return;
      }
    }
  }
}
