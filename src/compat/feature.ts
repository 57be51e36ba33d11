/**
 * Edge feature: channelstream compatibility. Serves the signed server API
 * routes (every node, the director-only node too) and, on edges with
 * websocket clients, `/ws?conn_id=` connections registered through any node.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import { CloseCodes, ErrorCodes, TidingsError, toErrorBody } from '../protocol/errors.js';
import type { EdgeServer } from '../edge/edge-server.js';
import { stateLinkOf } from '../edge/state-link.js';
import { CompatApi } from './routes.js';
import { CompatConnection } from './ws-connection.js';

/** channelstream's server heartbeat period. */
const HEARTBEAT_MS = 5000;

function reject(socket: Duplex, status: number, err: TidingsError): void {
  const body = JSON.stringify({ error: toErrorBody(err) });
  socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 503 ? 'Service Unavailable' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export function compatFeature(edge: EdgeServer, config: Config, log: Logger): void {
  const api = new CompatApi(config, edge.commands, log.child({ component: 'channelstream-api' }));
  edge.addRoute((req, res, path, url) => api.handle(req, res, path, url));
  if (!edge.websocketEnabled) return;
  const link = stateLinkOf(edge, log.child({ component: 'state-link' }));
  const conns = new Set<CompatConnection>();
  const timer = setInterval(() => {
    const now = Date.now();
    for (const c of conns) c.heartbeat(now);
  }, HEARTBEAT_MS);
  timer.unref();

  edge.upgradeHooks.push((req: IncomingMessage, socket: Duplex, head: Buffer, url: URL, path: string) => {
    if (path !== '/ws') return false;
    const connId = url.searchParams.get('conn_id');
    if (connId === null) return false;
    if (conns.size + edge.connectionCount >= config.max_connections) {
      reject(socket, 503, new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'connection limit reached'));
      return true;
    }
    let gone = false;
    let attached = false;
    let accepted = false;
    socket.once('close', () => {
      gone = true;
      // Attached by the director but the websocket never opened: let the director know it is not here.
      if (attached && !accepted) link.close(connId);
    });
    edge.commands.request<{ user: string; channels: string[]; catchup_since: number | null }>('conn_attach', { conn_id: connId, edge: edge.edgeId, instance: link.instance }).then(
      (r) => {
        attached = true;
        const wss = edge.webSocketServer;
        if (gone || !wss) {
          link.close(connId);
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => {
          accepted = true;
          (socket as Socket).setNoDelay(true);
          const conn = new CompatConnection(connId, r.user, ws, socket as Socket, edge, link, log.child({ conn: connId, channelstream: true }), (c) => conns.delete(c));
          conns.add(conn);
          conn.start(r.channels, r.catchup_since ?? null).catch((err: Error) => {
            log.warn({ conn: connId, err: err.message }, 'channelstream connection failed to start');
            conn.close(CloseCodes.INTERNAL);
          });
        });
      },
      (err: unknown) => {
        const e = err instanceof TidingsError ? err : new TidingsError(ErrorCodes.INTERNAL);
        if (!gone) reject(socket, e.status, e);
      },
    );
    return true;
  });
}
