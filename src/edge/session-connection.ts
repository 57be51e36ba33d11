/**
 * What every text protocol on a Session shares (omnibus, Seth-Pusher): frames
 * handled one after another in arrival order, at most MAX_QUEUED waiting; a
 * frame above max_message_size closes the session (4009); a client that has
 * not proven who it is within connect_timeout is closed (4003); a gap or a
 * full send buffer closes it too (these protocols have no recovery: their
 * clients reconnect and subscribe again). A subclass says how a frame is
 * handled, how a failure is answered, and what a push looks like to it.
 */
import type { Logger } from 'pino';
import type { EdgeServer } from './edge-server.js';
import type { Listener } from './hub.js';
import type { SharedPush } from './frames.js';
import type { Session } from './session.js';
import { CloseCodes, ErrorCodes, TidingsError } from '../protocol/errors.js';

/** Frames waiting behind the one being handled, at most. */
export const MAX_QUEUED = 256;

export abstract class SessionConnection implements Listener {
  /** Channels this connection receives. */
  protected readonly subscriptions = new Set<string>();
  protected closed = false;
  private readonly queue: string[] = [];
  private running = false;
  private readonly connectTimer: NodeJS.Timeout;

  constructor(
    protected readonly session: Session,
    protected readonly edge: EdgeServer,
    protected readonly log: Logger,
    private readonly onEnd: (c: SessionConnection) => void,
  ) {
    session.attach({ message: (text) => this.onFrame(text), close: () => this.cleanup(), overflow: () => this.onOverflow() });
    this.connectTimer = setTimeout(() => {
      if (!this.proven()) this.close(CloseCodes.CONNECT_TIMEOUT.code, CloseCodes.CONNECT_TIMEOUT.reason);
    }, edge.config.connect_timeout * 1000);
    this.connectTimer.unref();
  }

  abstract deliver(push: SharedPush): void;
  /** Handle one frame; answer its own failures or throw them to `refuse`. */
  protected abstract handle(text: string): Promise<void>;
  /** Tell the client its frame was refused (and log what is not the client's doing). */
  protected abstract refuse(err: unknown): void;
  /** Has the client proven who it is (authenticated, connected)? */
  protected abstract proven(): boolean;
  /** Leave what the subclass joined besides `subscriptions`, once, as the connection ends. */
  protected onEnded(): void {}

  /** The client has proven who it is: connect_timeout no longer applies. */
  protected connected(): void {
    clearTimeout(this.connectTimer);
  }

  onGap(channel: string): void {
    this.close(CloseCodes.MESSAGE_GAP.code, `${CloseCodes.MESSAGE_GAP.reason}: ${channel}`.slice(0, 120));
  }

  private onOverflow(): void {
    this.edge.metrics.slowConsumers.inc();
    this.close(CloseCodes.SLOW_CONSUMER.code, CloseCodes.SLOW_CONSUMER.reason);
  }

  private onFrame(text: string): void {
    if (this.closed) return;
    if (Buffer.byteLength(text, 'utf8') > this.edge.config.max_message_size) {
      this.close(CloseCodes.MESSAGE_TOO_BIG.code, CloseCodes.MESSAGE_TOO_BIG.reason);
      return;
    }
    if (this.queue.length >= MAX_QUEUED) {
      this.refuse(new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `more than ${MAX_QUEUED} frames waiting`));
      return;
    }
    this.queue.push(text);
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0 && !this.closed) {
      const text = this.queue.shift()!;
      try {
        await this.handle(text);
      } catch (err) {
        this.refuse(err);
      }
    }
    this.running = false;
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.session.close(code, reason);
    this.cleanup();
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.connectTimer);
    this.queue.length = 0;
    for (const ch of this.subscriptions) this.edge.hub.leaveChannel(this, ch);
    this.subscriptions.clear();
    this.onEnded();
    this.onEnd(this);
  }
}
