/**
 * The WAMP router's part in one edge process: takes the websocket upgrades
 * that are WAMP's, keeps the edge's sessions, gives each channel one
 * subscription ID on this edge (so an EVENT is encoded once per message and
 * serializer, not once per subscriber), and routes the director's
 * INVOCATIONs and INTERRUPTs to the callee sessions held here.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError, toErrorBody } from '../protocol/errors.js';
import type { EdgeServer } from '../edge/edge-server.js';
import type { StateLink } from '../edge/state-link.js';
import { binaryFrame, textFrame, type SharedPush } from '../edge/frames.js';
import { encodeMessage } from './codec.js';
import { publicationId, randomId } from './ids.js';
import { eventPayload } from './payload-map.js';
import { Msg, SUBPROTOCOL_WAMP_JSON, SUBPROTOCOL_WAMP_MSGPACK, Uri, isId, serializerOf, withPayload, type Dict, type Serializer } from './messages.js';
import { WampSession } from './session.js';

interface EventFrames {
  subscription: number;
  json?: Buffer | null;
  msgpack?: Buffer | null;
}

/** The protocols a websocket upgrade offers, in the client's order. */
export function offeredProtocols(req: IncomingMessage): string[] {
  const h = req.headers['sec-websocket-protocol'];
  if (typeof h !== 'string') return [];
  return h.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
}

function reject(socket: Duplex, status: number, err: TidingsError): void {
  const body = JSON.stringify({ error: toErrorBody(err) });
  const text = status === 503 ? 'Service Unavailable' : 'Bad Request';
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export class WampEdge {
  private readonly sessions = new Set<WampSession>();
  /** Established sessions by WAMP session ID, for INVOCATIONs. */
  private readonly byId = new Map<number, WampSession>();
  private readonly subscriptions = new Map<string, { id: number; count: number }>();
  private readonly frames = new WeakMap<SharedPush, EventFrames>();
  private readonly wss: WebSocketServer;
  private readonly timer: NodeJS.Timeout;
  /** Sessions aborted, by reason URI (protocol violations, failed authentication, unknown realm). */
  readonly aborts: Counter<'reason'>;

  constructor(
    readonly edge: EdgeServer,
    readonly config: Config,
    readonly link: StateLink,
    private readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.max_message_size,
      perMessageDeflate: false,
      clientTracking: false,
      // The first WAMP serializer the client offers that Tidings speaks.
      handleProtocols: (protocols) => {
        for (const p of protocols) if (serializerOf(p)) return p;
        return false;
      },
    });
    const sessions = this.sessions;
    new Gauge({
      name: 'tidings_edge_wamp_sessions',
      help: 'Open WAMP websocket connections (in the handshake or established)',
      registers: [edge.registry],
      collect() {
        this.set(sessions.size);
      },
    });
    this.aborts = new Counter({ name: 'tidings_edge_wamp_aborts_total', help: 'WAMP sessions ended with ABORT, by reason URI', labelNames: ['reason'], registers: [edge.registry] });
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const s of this.sessions) s.tick(now);
    }, 1000);
    this.timer.unref();
    this.syncTimer = setInterval(() => this.sync(), Math.max(500, (config.presence_ttl * 1000) / 3));
    this.syncTimer.unref();
  }

  private readonly syncTimer: NodeJS.Timeout;
  private syncing = false;

  /**
   * Tell the director which registrations this edge's sessions hold, so a
   * director that restarted (or took over) knows them again; ones it cannot
   * restore are revoked here.
   */
  private sync(): void {
    if (this.syncing) return;
    const registrations: Array<{ registration: number; procedure: string; session: number }> = [];
    for (const s of this.byId.values()) for (const [registration, procedure] of s.dealer.registered()) registrations.push({ registration, procedure, session: s.sessionId });
    if (registrations.length === 0) return;
    this.syncing = true;
    this.edge.commands
      .request<{ revoked: number[] }>('wamp_sync', { edge: this.edge.edgeId, instance: this.link.instance, registrations })
      .then(
        (r) => {
          for (const id of r.revoked) {
            const owner = registrations.find((x) => x.registration === id);
            if (owner) this.byId.get(owner.session)?.dealer.revoke(id);
          }
        },
        (err: Error) => this.log.debug({ err: err.message }, 'WAMP registrations not synced; next time'),
      )
      .finally(() => (this.syncing = false));
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Upgrade hook: WAMP's path, and /ws when every offered subprotocol is a WAMP one. */
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, path: string): boolean {
    const offered = offeredProtocols(req);
    const onlyWamp = offered.length > 0 && offered.every((p) => p.startsWith('wamp.'));
    if (path !== this.config.wamp_path && !(path === '/ws' && onlyWamp)) return false;
    if (!offered.some((p) => serializerOf(p) !== null)) {
      reject(socket, 400, new TidingsError(ErrorCodes.BAD_REQUEST, `offer the websocket subprotocol ${SUBPROTOCOL_WAMP_JSON} or ${SUBPROTOCOL_WAMP_MSGPACK}`));
      return true;
    }
    if (this.sessions.size + this.edge.connectionCount >= this.config.max_connections) {
      reject(socket, 503, new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'connection limit reached'));
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const serializer = serializerOf(ws.protocol) as Serializer;
      (socket as Socket).setNoDelay(true);
      const session = new WampSession(ws, socket as Socket, serializer, this, this.log);
      this.sessions.add(session);
    });
    return true;
  }

  /** The edge is stopping: every session is told (GOODBYE wamp.close.system_shutdown) and closed with 1001. */
  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.syncTimer);
    for (const s of [...this.sessions]) s.shutdown();
  }

  established(session: WampSession): void {
    this.byId.set(session.sessionId, session);
  }

  forget(session: WampSession): void {
    this.sessions.delete(session);
    if (this.byId.get(session.sessionId) === session) this.byId.delete(session.sessionId);
  }

  acquireSubscription(channel: string): number {
    let s = this.subscriptions.get(channel);
    if (!s) this.subscriptions.set(channel, (s = { id: randomId(), count: 0 }));
    s.count++;
    return s.id;
  }

  releaseSubscription(channel: string): void {
    const s = this.subscriptions.get(channel);
    if (s && --s.count <= 0) this.subscriptions.delete(channel);
  }

  /**
   * The EVENT frame of a channel message for one serializer, built on first
   * use and shared by every session of this edge subscribed to the channel:
   * `[EVENT, subscription, publication, {publisher_authid}, args, kwargs]`.
   */
  eventFrame(push: SharedPush, subscription: number, serializer: Serializer): Buffer | null {
    let f = this.frames.get(push);
    if (!f || f.subscription !== subscription) this.frames.set(push, (f = { subscription }));
    const cached = f[serializer];
    if (cached !== undefined) return cached;
    let frame: Buffer | null = null;
    try {
      const native = JSON.parse(push.json.toString('utf8')) as { channel: string; epoch: string; offset: number; sender: string | null; data: unknown };
      const details: Dict = {};
      if (typeof native.sender === 'string') details['publisher_authid'] = native.sender;
      const { args, kwargs } = eventPayload(native.data);
      const message = withPayload([Msg.EVENT, subscription, publicationId(native.channel, native.epoch, native.offset), details], args, kwargs);
      const encoded = encodeMessage(serializer, message);
      frame = typeof encoded === 'string' ? textFrame(Buffer.from(encoded)) : binaryFrame(encoded);
    } catch (err) {
      this.log.warn({ channel: push.channel, offset: push.offset, err: (err as Error).message }, 'channel message has no WAMP form; not sent to WAMP subscribers');
    }
    f[serializer] = frame;
    return frame;
  }

  /** The director's control messages for WAMP sessions held here. */
  onControl(body: Record<string, unknown>): void {
    const op = body['op'];
    if (op !== 'wamp_invocation' && op !== 'wamp_interrupt') return;
    const sessionId = body['session'];
    const invocation = body['invocation'];
    if (!isId(sessionId) || !isId(invocation)) return;
    const session = this.byId.get(sessionId);
    if (op === 'wamp_interrupt') {
      session?.dealer.interrupt(invocation, typeof body['reason'] === 'string' ? body['reason'] : Uri.CANCELED);
      return;
    }
    if (!session || session.state !== 'established') {
      this.answerDirector(sessionId, invocation, { error: Uri.CANCELED, args: ['the callee left before the invocation reached it'] });
      // The director still routes to a session gone from here (its close was lost): drop its registrations.
      if (!session) this.edge.commands.request('wamp_session_closed', { instance: this.link.instance, session: sessionId }).catch(() => undefined);
      return;
    }
    session.dealer.invoke(body);
  }

  /** A callee's YIELD or ERROR (or the edge's own error for it), to the director. */
  answerDirector(session: number, invocation: number, outcome: { error?: string; args?: unknown[]; kwargs?: Dict }): void {
    this.edge.commands.request('wamp_answer', { instance: this.link.instance, session, invocation, ...outcome }).catch((err: Error) => {
      this.log.warn({ invocation, err: err.message }, 'answer to a WAMP invocation not delivered; the caller will time out');
    });
  }
}
