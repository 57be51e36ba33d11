/**
 * A SockJS connection (npm `sockjs`, the reference sockjs-node server) as a
 * transport-neutral Session.
 *
 * sockjs-node queues messages for a session without a bound while no request
 * is there to carry them (between two polls), and faye-websocket writes
 * without one on its websocket transport. The session therefore measures what
 * waits — the session's send buffer plus the bytes in the receiving socket —
 * before each send, and reports an overflow past client_send_buffer rather
 * than queue more. This reads two fields of sockjs 0.3.24's session
 * (`send_buffer`, `recv`), pinned in package.json; test/integration/sockjs.test.ts
 * covers it ("a SockJS client that stops polling is cut off as a slow consumer").
 */
import type { Connection } from 'sockjs';
import type { RequestInfo } from '../auth/authenticator.js';
import type { Session, SessionHandlers, SharedText } from '../edge/session.js';

/** The parts of sockjs' internal session read here. */
interface SockJsInternals {
  _session?: {
    send_buffer?: string[];
    recv?: { connection?: { writableLength?: number } | null; response?: { connection?: { writableLength?: number } } | null } | null;
  };
}

export class SockJsSession implements Session {
  readonly transport: string;
  private handlers: SessionHandlers | null = null;
  closed = false;
  /** Characters in sockjs' send buffer, counted since the buffer array was last swapped (flushed). */
  private buffered = 0;
  private bufferedArray: string[] | null = null;

  constructor(
    private readonly conn: Connection,
    readonly request: RequestInfo,
    private readonly sendBuffer: number,
  ) {
    this.transport = `sockjs-${conn.protocol}`;
    conn.on('data', (text: string) => {
      if (!this.closed) this.handlers?.message(text);
    });
    conn.on('close', () => this.ended());
  }

  attach(handlers: SessionHandlers): void {
    this.handlers = handlers;
  }

  /** Bytes waiting for the client: the session's queue and the receiving socket's buffer. */
  pending(): number {
    const s = (this.conn as unknown as SockJsInternals)._session;
    if (!s) return 0;
    const buf = s.send_buffer;
    if (buf) {
      if (buf !== this.bufferedArray) {
        this.bufferedArray = buf;
        this.buffered = 0;
        for (const m of buf) this.buffered += m.length;
      }
    }
    const recv = s.recv;
    const socket = recv?.connection ?? recv?.response?.connection;
    return this.buffered + (socket?.writableLength ?? 0);
  }

  send(message: string | SharedText): void {
    if (this.closed) return;
    const text = typeof message === 'string' ? message : message.text;
    if (this.pending() + text.length > this.sendBuffer) {
      this.handlers?.overflow();
      return;
    }
    this.conn.write(text);
    const buf = (this.conn as unknown as SockJsInternals)._session?.send_buffer;
    if (buf && buf === this.bufferedArray && buf.length > 0) this.buffered += text.length;
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    // sockjs' close() takes numbers although its typings say strings.
    (this.conn.close as unknown as (c: number, r: string) => boolean)(code, reason.slice(0, 120));
    this.ended();
  }

  private ended(): void {
    if (this.closed) return;
    this.closed = true;
    this.handlers?.close();
  }
}
