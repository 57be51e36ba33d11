/**
 * A transport-neutral client session: text messages in and out, a close with
 * a code, an end. The compatibility protocols (omnibus, Seth-Pusher) are
 * written against this shape, so each runs over a plain websocket and over
 * SockJS alike. Every implementation bounds what it queues for the client
 * (client_send_buffer) and reports an overflow instead of growing.
 */
import type { WebSocket } from 'ws';
import type { Socket } from 'node:net';
import type { RequestInfo } from '../auth/authenticator.js';
import { Outbox, closeGraceMs, type FlushScheduler } from './outbox.js';
import { textFrame } from './frames.js';

/** A message built once and sent to many sessions: its text, and its websocket frame made on first use. */
export class SharedText {
  private frame: Buffer | null = null;
  constructor(readonly text: string) {}
  wsFrame(): Buffer {
    return (this.frame ??= textFrame(Buffer.from(this.text, 'utf8')));
  }
}

export interface SessionHandlers {
  message(text: string): void;
  /** The session ended (either side); called once. */
  close(): void;
  /** More than client_send_buffer bytes are waiting for the client. */
  overflow(): void;
}

export interface Session {
  /** 'websocket', or the SockJS transport ('sockjs-websocket', 'xhr-streaming', ...). */
  readonly transport: string;
  /** The opening request's credential headers and the client's address. */
  readonly request: RequestInfo;
  send(message: string | SharedText): void;
  close(code: number, reason: string): void;
  readonly closed: boolean;
  /** Set once by the protocol that owns the session, before any message arrives. */
  attach(handlers: SessionHandlers): void;
}

/**
 * A session over a plain websocket (`ws`): writes go through an Outbox
 * (coalesced, bounded); the server pings every ping_interval and closes a
 * client silent for idle_timeout (django-omnibus had no heartbeat at all).
 */
export class WsSession implements Session {
  readonly transport = 'websocket';
  private readonly outbox: Outbox;
  private handlers: SessionHandlers | null = null;
  private lastSeen = Date.now();
  private lastPing = Date.now();
  closed = false;

  constructor(
    private readonly ws: WebSocket,
    socket: Socket,
    readonly request: RequestInfo,
    sendBuffer: number,
    scheduler: FlushScheduler,
  ) {
    this.outbox = new Outbox(socket, sendBuffer, { onOverflow: () => this.handlers?.overflow() }, scheduler);
    ws.on('message', (data: Buffer) => {
      this.lastSeen = Date.now();
      if (!this.closed) this.handlers?.message(data.toString('utf8'));
    });
    ws.on('pong', () => (this.lastSeen = Date.now()));
    ws.on('close', () => this.ended());
    ws.on('error', () => undefined);
  }

  attach(handlers: SessionHandlers): void {
    this.handlers = handlers;
  }

  send(message: string | SharedText): void {
    if (this.closed) return;
    this.outbox.push(typeof message === 'string' ? textFrame(Buffer.from(message, 'utf8')) : message.wsFrame());
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    // Everything queued goes before the close frame, whatever the socket holds.
    this.outbox.flushAll();
    try {
      this.ws.close(code, reason.slice(0, 120));
    } catch {
      this.ws.terminate();
    }
    setTimeout(() => this.ws.terminate(), closeGraceMs(code)).unref();
    this.ended();
  }

  /** Heartbeat, from the owner's sweep: ping, or close a silent client (4004). */
  tick(now: number, pingMs: number, idleMs: number): void {
    if (this.closed) return;
    if (now - this.lastSeen > idleMs) {
      this.close(4004, 'no frame from the client within the idle timeout');
      return;
    }
    if (now - this.lastPing >= pingMs) {
      this.lastPing = now;
      try {
        this.ws.ping();
      } catch {
        // closing already
      }
    }
  }

  private ended(): void {
    if (this.closed) return;
    this.closed = true;
    this.outbox.close();
    this.handlers?.close();
  }
}
