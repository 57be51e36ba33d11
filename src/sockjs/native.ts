/**
 * The native protocol over a Session (SockJS), for clients whose websockets
 * are blocked: the SDK's fallback transport. The edge's ClientConnection is
 * written against a `ws` WebSocket and a socket its Outbox writes websocket
 * frames to; here both are adapters over the session. Server frames are
 * unmasked and built by us, so the socket adapter reads each frame's header
 * and sends its payload as one SockJS message (a merged frame of several
 * pushes stays one message of "\n"-separated objects, as the protocol allows).
 */
import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import type { Socket } from 'node:net';
import type { EdgeServer } from '../edge/edge-server.js';
import type { Session } from '../edge/session.js';
import { CloseCodes } from '../protocol/errors.js';

/** Calls `each` with the payload of every complete unmasked frame in `buf`. */
export function eachFramePayload(buf: Buffer, each: (opcode: number, payload: Buffer) => void): void {
  let at = 0;
  while (at + 2 <= buf.length) {
    const opcode = buf[at]! & 0x0f;
    let len = buf[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) {
      len = buf.readUInt16BE(at + 2);
      head = 4;
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(at + 2));
      head = 10;
    }
    each(opcode, buf.subarray(at + head, at + head + len));
    at += head + len;
  }
}

class SessionWebSocket extends EventEmitter {
  readonly protocol = '';
  constructor(private readonly session: Session) {
    super();
  }
  close(code: number, reason: string): void {
    this.session.close(code, reason);
  }
  terminate(): void {
    this.session.close(1000, 'closed');
  }
}

class SessionSocket {
  constructor(private readonly session: Session & { pending?: () => number }) {}
  get writableLength(): number {
    return this.session.pending?.() ?? 0;
  }
  get destroyed(): boolean {
    return this.session.closed;
  }
  setNoDelay(): void {}
  write(buf: Buffer): boolean {
    eachFramePayload(buf, (opcode, payload) => {
      if (opcode === 1) this.session.send(payload.toString('utf8'));
    });
    return true;
  }
}

/** Serve one native-protocol client on a session. */
export function adoptNativeSession(edge: EdgeServer, session: Session): void {
  const ws = new SessionWebSocket(session);
  const socket = new SessionSocket(session);
  const conn = edge.adoptNative(ws as unknown as WebSocket, socket as unknown as Socket, session.request, null);
  session.attach({
    message: (text) => {
      const data = Buffer.from(text, 'utf8');
      if (data.length > edge.config.max_message_size) session.close(CloseCodes.MESSAGE_TOO_BIG.code, CloseCodes.MESSAGE_TOO_BIG.reason);
      else ws.emit('message', data, false);
    },
    close: () => ws.emit('close'),
    overflow: () => conn.onOverflow(),
  });
}
