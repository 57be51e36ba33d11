/**
 * A SockJS endpoint on the edge, built on npm `sockjs` (sockjs-node, the
 * reference server): `<prefix>/info`, `<prefix>/iframe.html`,
 * `<prefix>/<server>/<session>/{websocket, xhr, xhr_send, xhr_streaming,
 * eventsource, htmlfile, jsonp, jsonp_send}` and the raw `<prefix>/websocket`.
 * HTTP requests come through the edge's route list, websocket upgrades through
 * its upgrade hooks; every new SockJS connection is handed to the protocol as
 * a Session.
 *
 * What this layer adds to sockjs-node:
 * - worker affinity: with several edge workers, a request of a polling or
 *   streaming session is passed to the worker that owns the session id
 *   (src/edge/siblings.ts), so every request of a session meets its state;
 * - bounds: request bodies (xhr_send, jsonp_send) of at most
 *   max_message_size, websocket messages likewise (faye's maxLength), what
 *   waits for a client at most client_send_buffer (SockJsSession), sessions
 *   counted against max_connections;
 * - the opening request's credential headers, kept for the authenticators.
 */
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import sockjs, { type Connection } from 'sockjs';
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import type { RequestInfo } from '../auth/authenticator.js';
import { CloseCodes, ErrorCodes, TidingsError } from '../protocol/errors.js';
import { sendError } from '../http/io.js';
import { requestInfo, type EdgeServer } from '../edge/edge-server.js';
import { SockJsSession } from './session.js';

/** sockjs' session table, to tell a new session from a known one. */
const transportModule = createRequire(import.meta.url)('sockjs/lib/transport.js') as { Session: { bySessionId(id: string): unknown } };

/** Transports whose one session spans several HTTP requests: they must all reach the owning worker. */
const SESSION_TRANSPORTS = new Set(['xhr', 'xhr_send', 'xhr_streaming', 'eventsource', 'htmlfile', 'jsonp', 'jsonp_send']);
/** Of those, the ones that receive (and so may open a session). */
const RECEIVING = new Set(['xhr', 'xhr_streaming', 'eventsource', 'htmlfile', 'jsonp']);
const SESSION_PATH = /^\/([^/.]+)\/([^/.]+)\/([a-z_]+)\/?$/;
/** Opening requests remembered until their session's connection event, at most. */
const MAX_OPENING = 10_000;

export interface SockJsEndpointOptions {
  /** Path of the endpoint below server_base_url, e.g. '/ec'. */
  path: string;
  /** Logged with each session. */
  name: string;
  /** Let HTTP requests to exactly `path` through for another route (e.g. channelstream's POST /connect). */
  exactPathMethods?: readonly string[];
  onSession(session: SockJsSession): void;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Live SockJS sessions of this process, over every endpoint (counted with the edge's connections). */
let liveSessions = 0;

export function sockJsSessionCount(): number {
  return liveSessions;
}

export function installSockJsEndpoint(edge: EdgeServer, config: Config, log: Logger, opts: SockJsEndpointOptions): void {
  const base = config.server_base_url;
  const server = sockjs.createServer({
    prefix: escapeRegExp(base + opts.path),
    sockjs_url: `${base}/sockjs.min.js`,
    websocket: true,
    jsessionid: false,
    heartbeat_delay: config.sockjs_heartbeat * 1000,
    disconnect_delay: config.sockjs_disconnect_delay * 1000,
    log: (severity: string, line: string) => {
      if (severity === 'error') log.warn({ endpoint: opts.name }, line);
      else log.trace({ endpoint: opts.name }, line);
    },
    // faye-websocket's own limit on an incoming message.
    faye_server_options: { maxLength: config.max_message_size },
  } as sockjs.ServerOptions);
  const listener = (server as unknown as { listener(): { handler(req: IncomingMessage, res: ServerResponse | Duplex, head?: Buffer): boolean } }).listener();
  const handle = listener.handler.bind(listener);

  // The request that opens a session, by session id (polling transports) or by socket (websockets).
  const openingBySession = new Map<string, RequestInfo>();
  const openingBySocket = new WeakMap<object, RequestInfo>();

  server.on('connection', (conn: Connection) => {
    const internals = (conn as unknown as { _session?: { recv?: { connection?: object } | null } })._session;
    const socket = internals?.recv?.connection;
    const m = SESSION_PATH.exec(conn.pathname?.slice((base + opts.path).length) ?? '');
    let info: RequestInfo | undefined;
    if (m) {
      info = openingBySession.get(m[2]!);
      openingBySession.delete(m[2]!);
    }
    info ??= socket ? openingBySocket.get(socket) : undefined;
    const session = new SockJsSession(conn, info ?? { headers: {}, remoteAddress: conn.remoteAddress ?? null }, config.client_send_buffer);
    liveSessions++;
    conn.on('close', () => liveSessions--);
    if (liveSessions + edge.connectionCount > config.max_connections) {
      session.close(CloseCodes.UNAVAILABLE.code, 'connection limit reached');
      return;
    }
    log.debug({ endpoint: opts.name, transport: session.transport }, 'sockjs session opened');
    opts.onSession(session);
  });

  edge.addRoute((req, res, path) => {
    if (path !== opts.path && !path.startsWith(opts.path + '/')) return false;
    if (path === opts.path && opts.exactPathMethods && !opts.exactPathMethods.includes(req.method ?? 'GET')) return false;
    const m = SESSION_PATH.exec(path.slice(opts.path.length));
    if (m && SESSION_TRANSPORTS.has(m[3]!)) {
      const sessionId = m[2]!;
      const owner = edge.siblings?.mustForward(req, sessionId) ?? null;
      if (owner !== null) {
        edge.siblings!.forward(req, res, owner);
        return true;
      }
      if (req.method === 'POST' && !limitBody(req, res, config.max_message_size)) return true;
      if (RECEIVING.has(m[3]!) && transportModule.Session.bySessionId(sessionId) === null) {
        if (openingBySession.size >= MAX_OPENING) openingBySession.delete(openingBySession.keys().next().value as string);
        openingBySession.set(sessionId, requestInfo(req));
      }
    }
    if (!handle(req, res)) sendError(res, new TidingsError(ErrorCodes.NOT_FOUND, path));
    return true;
  });

  edge.upgradeHooks.push((req, socket, head, _url, path) => {
    if (!path.startsWith(opts.path + '/')) return false;
    const rest = path.slice(opts.path.length);
    const m = SESSION_PATH.exec(rest);
    if (rest !== '/websocket' && !(m && m[3] === 'websocket')) return false;
    openingBySocket.set(socket, requestInfo(req));
    if (!handle(req, socket, head)) socket.destroy();
    return true;
  });
}

/**
 * Bound a request body that sockjs-node will read (it reads without a limit):
 * a declared length over the limit is refused at once, and a body that grows
 * past it is cut off and answered 413. Returns false when refused already.
 */
function limitBody(req: IncomingMessage, res: ServerResponse, limit: number): boolean {
  // JSON-quoting can make a frame of max_message_size characters up to six times longer on the wire.
  const max = limit * 6 + 1024;
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    req.resume();
    sendError(res, new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `body of ${declared} bytes > ${max}`));
    return false;
  }
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= max) return;
    // Take the body away from sockjs, drain it, and answer here.
    req.removeAllListeners('data');
    req.removeAllListeners('end');
    req.resume();
    if (!res.headersSent) sendError(res, new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `body larger than ${max} bytes`));
  });
  return true;
}
