/**
 * A channelstream websocket client (`/ws?conn_id=`): a connection registered
 * with `/connect` on any node. Each frame is a JSON array holding one
 * channelstream object, as channelstream sends them; `[]` is the heartbeat
 * every 5 s; any frame the client sends only marks it active. The frame of
 * a live push is built once per push, not once per subscriber. Closes the
 * way channelstream does: 1000 after /disconnect or when a newer websocket
 * takes the conn_id.
 */
import type { WebSocket } from 'ws';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { CloseCodes, type CloseSpec } from '../protocol/errors.js';
import type { EdgeServer } from '../edge/edge-server.js';
import { Outbox, closeGraceMs } from '../edge/outbox.js';
import { textFrame, type SharedPush } from '../edge/frames.js';
import type { StateLink } from '../edge/state-link.js';
import { CompatSession, viewFrame, type CsView, type EndReason } from './session.js';
import type { Obj } from './shape.js';

export const HEARTBEAT_FRAME = textFrame(Buffer.from('[]'));

/** channelstream closes with 1000 whatever the reason; the reason text tells them apart. */
const NORMAL_REASONS: Partial<Record<EndReason, string>> = {
  disconnected: 'disconnected',
  replaced: 'replaced by a newer connection',
  client: 'normal closure',
};

export class CompatConnection extends CompatSession {
  private readonly outbox: Outbox;
  lastSeen = Date.now();

  constructor(id: string, user: string, private readonly ws: WebSocket, socket: Socket, edge: EdgeServer, link: StateLink, log: Logger, onClosing: (c: CompatSession) => boolean) {
    super(id, user, edge, link, log, onClosing, false);
    this.outbox = new Outbox(socket, edge.config.client_send_buffer, this, edge.scheduler);
    ws.on('message', () => (this.lastSeen = Date.now()));
    ws.on('close', () => this.cleanup());
    ws.on('error', (err) => log.debug({ err: err.message }, 'websocket error'));
  }

  protected emit(obj: Obj): void {
    this.outbox.push(textFrame(Buffer.from(JSON.stringify([obj]))));
  }

  protected emitLive(_push: SharedPush, view: CsView): void {
    this.outbox.push(viewFrame(view));
  }

  onOverflow(): void {
    this.edge.metrics.slowConsumers.inc();
    this.outbox.close();
    this.close(CloseCodes.SLOW_CONSUMER);
  }

  heartbeat(now: number): void {
    if (now - this.lastSeen > this.edge.config.idle_timeout * 1000) this.close(CloseCodes.IDLE_TIMEOUT);
    else this.outbox.push(HEARTBEAT_FRAME);
  }

  protected end(reason: EndReason): void {
    const text = NORMAL_REASONS[reason];
    if (text !== undefined) this.close(CloseCodes.NORMAL, undefined, text);
    else if (reason === 'gap') this.close(CloseCodes.MESSAGE_GAP);
    else if (reason === 'slow') this.onOverflow();
    else this.close(CloseCodes.INTERNAL);
  }

  close(spec: CloseSpec, detail?: string, reasonText?: string): void {
    if (this.closed) return;
    this.outbox.flushAll();
    try {
      this.ws.close(spec.code, reasonText ?? (detail ? `${spec.reason}: ${detail}`.slice(0, 120) : spec.reason));
    } catch {
      this.ws.terminate();
    }
    setTimeout(() => this.ws.terminate(), closeGraceMs(spec)).unref();
    this.cleanup();
  }

  protected override cleanup(): void {
    if (this.closed) return;
    this.outbox.close();
    super.cleanup();
  }
}
