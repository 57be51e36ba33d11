/**
 * Edge feature: channelstream compatibility. Serves channelstream's HTTP
 * routes (every node, the director-only node too) and, on edges with
 * websocket clients, its two client transports for connections registered
 * through any node: `/ws?conn_id=` websockets and `/listen?conn_id=` long
 * polls. One client per conn_id on an edge: a newer one replaces the older
 * (closed with 1000, or its poll answered at once).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import { CloseCodes, ErrorCodes, TidingsError, toErrorBody } from '../protocol/errors.js';
import type { EdgeServer } from '../edge/edge-server.js';
import { stateLinkOf, type StateLink } from '../edge/state-link.js';
import { CompatApi, type ListenHandler } from './routes.js';
import { CompatConnection } from './ws-connection.js';
import { PollSession } from './poll.js';
import type { CompatSession } from './session.js';
import { canonicalUuid } from './schema.js';
import type { Obj } from './shape.js';

/** channelstream's server heartbeat period. */
const HEARTBEAT_MS = 5000;

function reject(socket: Duplex, status: number, err: TidingsError): void {
  const body = JSON.stringify({ error: toErrorBody(err) });
  socket.end(`HTTP/1.1 ${status} ${status === 503 ? 'Service Unavailable' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** The clients of registered connections held by this edge process, one per conn_id. */
class Sessions {
  private readonly byId = new Map<string, CompatSession>();
  /** Attaches in progress per conn_id: an older client closing meanwhile leaves the report to the newer one. */
  private readonly attaching = new Map<string, number>();

  constructor(private readonly link: StateLink) {}

  get size(): number {
    return this.byId.size;
  }

  get(id: string): CompatSession | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<CompatSession> {
    return this.byId.values();
  }

  beginAttach(id: string): void {
    this.attaching.set(id, (this.attaching.get(id) ?? 0) + 1);
    this.link.attaching.add(id);
  }

  endAttach(id: string): void {
    const n = (this.attaching.get(id) ?? 1) - 1;
    if (n > 0) this.attaching.set(id, n);
    else {
      this.attaching.delete(id);
      this.link.attaching.delete(id);
    }
  }

  /** The director attached `id` here but no client came (it left, or the attach failed late): say so unless another client has it. */
  abandon(id: string): void {
    if (!this.byId.has(id) && !this.attaching.has(id)) this.link.close(id);
  }

  /** Make `s` the client of its id; the older one, if any, is replaced. */
  add(s: CompatSession): void {
    const older = this.byId.get(s.id);
    this.byId.set(s.id, s);
    older?.disconnect(true);
  }

  /** A client is closing: whether it should tell the director (no newer client took its id). */
  closing(s: CompatSession): boolean {
    if (this.byId.get(s.id) === s) this.byId.delete(s.id);
    else return false;
    return !this.attaching.has(s.id);
  }
}

export function compatFeature(edge: EdgeServer, config: Config, log: Logger): void {
  if (!edge.websocketEnabled) {
    const api = new CompatApi(config, edge.commands, log.child({ component: 'channelstream-api' }), null);
    edge.addRoute((req, res, path, url) => api.handle(req, res, path, url));
    return;
  }
  const link = stateLinkOf(edge, log.child({ component: 'state-link' }));
  const sessions = new Sessions(link);
  const closing = (s: CompatSession): boolean => sessions.closing(s);

  /** Attach a registered connection here; rejects with the director's error. */
  const attach = (connId: string): Promise<{ user: string; channels: string[] }> => {
    sessions.beginAttach(connId);
    return edge.commands.request<{ user: string; channels: string[] }>('conn_attach', { conn_id: connId, edge: edge.edgeId, instance: link.instance }).finally(() => sessions.endAttach(connId));
  };

  let api: CompatApi;
  const listen: ListenHandler = (req: IncomingMessage, res: ServerResponse, connId: string, send: (res: ServerResponse, items: Obj[]) => void) => {
    if (sessions.size + edge.connectionCount >= config.max_connections) {
      api.listenFailed(res, new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'connection limit reached'), req);
      return;
    }
    attach(connId).then(
      (r) => {
        // (The request's body is read: `req` itself is done; the response tells whether the client is still there.)
        if (res.closed || res.writableEnded) {
          sessions.abandon(connId);
          return;
        }
        const s = new PollSession(connId, r.user, res, send, edge, link, log.child({ conn: connId, channelstream: 'poll' }), closing);
        sessions.add(s);
        s.start(r.channels);
      },
      (err: unknown) => api.listenFailed(res, err, req),
    );
  };
  api = new CompatApi(config, edge.commands, log.child({ component: 'channelstream-api' }), listen);
  edge.addRoute((req, res, path, url) => api.handle(req, res, path, url));

  // The director's kept frames and ready markers for connections held here.
  edge.controlHandlers.push((body) => {
    const op = body['op'];
    if ((op === 'cs_frame' || op === 'cs_ready' || op === 'cs_reconfirm') && typeof body['conn'] === 'string') sessions.get(body['conn'])?.onControl(body);
  });

  const timer = setInterval(() => {
    const now = Date.now();
    for (const s of sessions.values()) if (s instanceof CompatConnection) s.heartbeat(now);
  }, HEARTBEAT_MS);
  timer.unref();

  edge.upgradeHooks.push((req: IncomingMessage, socket: Duplex, head: Buffer, url: URL, path: string) => {
    if (path !== '/ws') return false;
    const rawId = url.searchParams.get('conn_id');
    if (rawId === null) return false;
    const wss = edge.webSocketServer;
    if (!wss) return false;
    if (sessions.size + edge.connectionCount >= config.max_connections) {
      reject(socket, 503, new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'connection limit reached'));
      return true;
    }
    // channelstream opens the websocket and closes it at once (1000) for an id it does not know.
    const refuse = (reason: string): void =>
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.close(CloseCodes.NORMAL.code, reason);
        setTimeout(() => ws.terminate(), 2000).unref();
      });
    const connId = canonicalUuid(rawId);
    if (connId === null) {
      refuse('invalid conn_id: not a UUID');
      return true;
    }
    let gone = false;
    socket.once('close', () => (gone = true));
    attach(connId).then(
      (r) => {
        if (gone) {
          sessions.abandon(connId);
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => {
          (socket as Socket).setNoDelay(true);
          const conn = new CompatConnection(connId, r.user, ws, socket as Socket, edge, link, log.child({ conn: connId, channelstream: 'ws' }), closing);
          sessions.add(conn);
          conn.start(r.channels);
        });
      },
      (err: unknown) => {
        if (gone) return;
        if (err instanceof TidingsError && err.code === ErrorCodes.UNKNOWN_CONNECTION.code) refuse('unknown connection');
        else {
          const e = err instanceof TidingsError ? err : new TidingsError(ErrorCodes.INTERNAL);
          reject(socket, e.status, e);
        }
      },
    );
    return true;
  });
}
