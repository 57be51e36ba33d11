/**
 * Coalesced writes: frames for a socket are collected during one turn of the
 * event loop and written together (cork/uncork, one writev), so a burst of
 * messages costs one system call per socket instead of one per message.
 */
import type { Socket } from 'node:net';

export interface OutboxOwner {
  /** Called when the bytes waiting for this socket pass the limit. */
  onOverflow(): void;
}

export class Outbox {
  private frames: Buffer[] = [];
  private bytes = 0;
  private scheduled = false;
  closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly limit: number,
    private readonly owner: OutboxOwner,
    private readonly scheduler: FlushScheduler,
  ) {}

  /** Bytes queued here and in the socket's own buffer. */
  get pending(): number {
    return this.bytes + this.socket.writableLength;
  }

  push(frame: Buffer): void {
    if (this.closed) return;
    if (this.pending + frame.length > this.limit) {
      this.owner.onOverflow();
      return;
    }
    this.frames.push(frame);
    this.bytes += frame.length;
    if (!this.scheduled) {
      this.scheduled = true;
      this.scheduler.schedule(this);
    }
  }

  flush(): void {
    this.scheduled = false;
    const frames = this.frames;
    if (frames.length === 0 || this.closed || this.socket.destroyed) {
      this.frames = [];
      this.bytes = 0;
      return;
    }
    this.frames = [];
    this.bytes = 0;
    if (frames.length === 1) {
      this.socket.write(frames[0]!);
      return;
    }
    this.socket.cork();
    for (const f of frames) this.socket.write(f);
    this.socket.uncork();
  }

  close(): void {
    this.closed = true;
    this.frames = [];
    this.bytes = 0;
  }
}

/** Flushes every outbox that received frames, once per event-loop turn. */
export class FlushScheduler {
  private dirty: Outbox[] = [];
  private armed = false;

  schedule(box: Outbox): void {
    this.dirty.push(box);
    if (!this.armed) {
      this.armed = true;
      setImmediate(this.run);
    }
  }

  private readonly run = (): void => {
    this.armed = false;
    const boxes = this.dirty;
    this.dirty = [];
    for (const b of boxes) b.flush();
  };
}
