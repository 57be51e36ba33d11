/**
 * An edge process: the websocket server clients connect to, the HTTP routes of
 * the node (health, metrics, publish API), one SUB socket (the Hub) and one
 * command client to the director. With `websocket: false` it serves only the
 * HTTP routes, as a director-only node does.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/resolve.js';
import { Authenticator, type RequestInfo } from '../auth/authenticator.js';
import { HttpAuthenticator, credentialHeaders } from '../auth/http-authenticator.js';
import { Siblings, type SiblingOptions } from './siblings.js';
import { CloseCodes, ErrorCodes, TidingsError, toErrorBody } from '../protocol/errors.js';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK } from '../protocol/messages.js';
import { encodeMsgpack, type Format } from '../protocol/codec.js';
import { nodeClientLink } from '../zmq/security.js';
import { CommandClient } from '../zmq/command-client.js';
import { sendError, sendJson, sendText } from '../http/io.js';
import { PublishApi } from '../api/publish-api.js';
import { Hub } from './hub.js';
import { FlushScheduler } from './outbox.js';
import { ClientConnection } from './connection.js';
import { binaryFrame, textFrame } from './frames.js';
import type { EdgeContext, MethodHandler, SubscribeOutcome } from './context.js';
import { recoverInto } from './recovery.js';
import { HistoryReader, commandPageFetch } from './history-reader.js';
import { DirectorWatch } from './director-watch.js';
import { parseRecover } from '../protocol/positions.js';
import { EdgeStats, type AuthMethod } from './stats.js';
import { registerRequest } from './refusals.js';
import { LoopGuard } from '../runtime/loop-guard.js';
import { LoopLag } from '../runtime/loop-lag.js';

/**
 * Timeouts of the HTTP server. Node checks `headersTimeout` and
 * `requestTimeout` only every `connectionsCheckingInterval` (30 s by
 * default, so a slowloris held a socket ~35 s): checking every quarter of
 * http_headers_timeout (at most every second) cuts slow headers within
 * http_headers_timeout plus that quarter.
 */
export function httpTimeouts(c: Config): { keepAliveTimeout: number; headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  const headersTimeout = Math.round(c.http_headers_timeout * 1000);
  return {
    keepAliveTimeout: 5000,
    headersTimeout,
    requestTimeout: Math.max(30_000, headersTimeout),
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.round(headersTimeout / 4))),
  };
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, path: string, url: URL) => boolean;

export interface EdgeServerOptions {
  config: Config;
  log: Logger;
  registry: Registry;
  edgeId: string;
  /** Serve websocket clients (false: HTTP routes only). */
  websocket: boolean;
  /** Prometheus text of the whole node; defaults to this process' registry. */
  metricsText?: () => Promise<string>;
  /** Listen on this already-bound server port instead of config (0 = ephemeral, tests). */
  port?: number;
  /**
   * A loop that serves every client died (after readiness went down): the
   * owner ends the process so its supervisor restarts it.
   */
  onFatal?: (reason: string) => void;
  /** The node's other edge workers, for requests that must reach the worker holding a session. */
  siblings?: SiblingOptions;
}

/** Credential headers and address of a request, as authenticators see them. */
export function requestInfo(req: IncomingMessage): RequestInfo {
  return { headers: credentialHeaders(req.headers), remoteAddress: req.socket.remoteAddress ?? null };
}

/**
 * Connections the kernel may hold ready for accept (capped by
 * net.core.somaxconn). Node's default, 511, overflowed when the clients of a
 * dead node reconnected at once: the kernel dropped their handshakes and the
 * clients' TCP retransmits (1 s, 3 s, 7 s, ...) stretched the storm.
 */
const LISTEN_BACKLOG = 4096;

/** Random bytes for connection ids, drawn 512 ids at a time: one randomFillSync per id was 1 % of a connect. */
const ID_BYTES = 9;
let idPool = Buffer.alloc(0);
let idAt = 0;

/** 72 random bits in base64url (12 characters): a connection id's unguessable part. */
function randomIdPart(): string {
  if (idAt + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 512);
    idAt = 0;
  }
  idAt += ID_BYTES;
  return idPool.toString('base64url', idAt - ID_BYTES, idAt);
}

function destroySocket(this: Duplex): void {
  this.destroy();
}

export class EdgeServer implements EdgeContext {
  readonly config: Config;
  readonly edgeId: string;
  readonly auth: Authenticator;
  /** The web app's authenticator (auth_url), or null. */
  readonly httpAuth: HttpAuthenticator | null;
  readonly siblings: Siblings | null;
  readonly commands: CommandClient;
  readonly scheduler: FlushScheduler;
  readonly extraMethods = new Map<string, MethodHandler>();
  readonly hub: Hub;
  readonly history: HistoryReader;
  private readonly directorWatch: DirectorWatch;
  readonly metrics: { slowConsumers: Counter; limited: Counter<'code'>; connections: Gauge; overloaded: Counter };
  /** Auth refusals, closes by code, bytes and deliveries: counted for /metrics, logged with reasons. */
  readonly stats: EdgeStats;
  /** Failures of one message or one connection, counted and skipped; a dead loop takes readiness down. */
  readonly loops: LoopGuard;
  /** How late the event loop runs: upgrades are refused (215) past overload_lag_ms. */
  private readonly lag = new LoopLag();
  private readonly log: Logger;
  private readonly routes: RouteHandler[] = [];
  private readonly connections = new Set<ClientConnection>();
  private server: Server | null = null;
  private wss: WebSocketServer | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly pingFrame = {
    json: textFrame(Buffer.from('{"type":"ping"}')),
    msgpack: () => this.pingMsgpack,
  };
  private readonly pingMsgpack = binaryFrame(encodeMsgpack({ type: 'ping' }));

  constructor(private readonly opts: EdgeServerOptions) {
    this.config = opts.config;
    this.edgeId = opts.edgeId;
    this.log = opts.log;
    this.scheduler = new FlushScheduler(opts.config.write_coalesce_ms);
    const c = opts.config;
    this.loops = new LoopGuard(opts.registry, opts.log.child({ component: 'loops' }), (loop, err) =>
      this.opts.onFatal?.(`${loop} loop died: ${err instanceof Error ? err.message : String(err)}`),
    );
    this.httpAuth = c.auth_url
      ? new HttpAuthenticator({ url: c.auth_url, timeoutMs: c.auth_timeout * 1000, cacheTtlMs: c.auth_cache_ttl * 1000, cacheSize: c.auth_cache_size, secret: c.secret })
      : null;
    this.auth = new Authenticator({
      tokenSecret: c.token_secret,
      allowAnonymous: c.allow_anonymous,
      anonymousChannels: c.anonymous_channels,
      maxLifetimeS: c.token_max_lifetime,
      http: c.auth_native ? this.httpAuth : null,
    });
    this.siblings = opts.siblings && opts.siblings.count > 1 ? new Siblings(opts.siblings, opts.log.child({ component: 'siblings' }), opts.registry) : null;
    this.commands = new CommandClient({
      address: opts.config.command_address,
      timeoutMs: opts.config.command_timeout * 1000,
      maxInFlight: 100_000,
      highWaterMark: opts.config.zmq_high_water_mark,
      link: nodeClientLink(opts.config, 'local'),
      log: opts.log.child({ component: 'command-client' }),
      loops: this.loops,
    });
    this.hub = new Hub({
      subscriberAddress: opts.config.subscriber_address,
      link: nodeClientLink(opts.config, 'local'),
      edgeId: opts.edgeId,
      highWaterMark: opts.config.zmq_high_water_mark,
      probeTimeoutMs: opts.config.command_timeout * 1000,
      commands: this.commands,
      log: opts.log.child({ component: 'hub' }),
      registry: opts.registry,
      onControl: (body) => this.onControl(body),
      loops: this.loops,
      onChannelMessage: (count) => this.scheduler.noteMessage(count),
      onChannelDelivered: () => this.scheduler.messageDelivered(),
    });
    this.history = new HistoryReader(commandPageFetch(this.commands));
    this.directorWatch = new DirectorWatch(this.commands, () => this.hub.reprobe(), opts.log.child({ component: 'director-watch' }));
    const connections = this.connections;
    this.metrics = {
      slowConsumers: new Counter({ name: 'tidings_edge_slow_consumers_total', help: 'Clients cut off for exceeding the send buffer', registers: [opts.registry] }),
      limited: new Counter({
        name: 'tidings_edge_commands_limited_total',
        help: 'Client commands refused by a per-connection limit, by error code (135 too_many_commands, 136 history_limit)',
        labelNames: ['code'],
        registers: [opts.registry],
      }),
      overloaded: new Counter({
        name: 'tidings_edge_overload_refusals_total',
        help: 'Websocket upgrades refused with 503 (215 overloaded) while the event loop ran more than overload_lag_ms late',
        registers: [opts.registry],
      }),
      connections: new Gauge({
        name: 'tidings_edge_connections',
        help: 'Open websocket connections',
        registers: [opts.registry],
        collect() {
          this.set(connections.size);
        },
      }),
    };
    const hub = this.hub;
    const scheduler = this.scheduler;
    this.stats = new EdgeStats(opts.registry, opts.log.child({ component: 'auth' }), {
      subscriptions: () => hub.subscriptionCount(),
      sentBytes: () => scheduler.sentBytes,
    });
    // One line when the director stops answering and one when it is back, whatever the number of failed requests.
    this.commands.onReachability = (reachable, detail) => {
      if (reachable) opts.log.info({ detail }, `director reachable again ${detail}`);
      else opts.log.warn({ detail }, `director unreachable: ${detail}`);
    };
    const publishApi = new PublishApi(opts.config, this.commands, opts.log.child({ component: 'api' }));
    this.addRoute((req, res, path) => publishApi.handle(req, res, path));
  }

  /** Add HTTP routes (compat API, demo, ...); the first handler that returns true wins. */
  addRoute(handler: RouteHandler): void {
    this.routes.push(handler);
  }

  get address(): { host: string; port: number } | null {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
  }

  /** Whether this server takes websocket clients (false on a director-only node). */
  get websocketEnabled(): boolean {
    return this.opts.websocket;
  }

  /** This process' metrics registry, for features' own metrics. */
  get registry(): Registry {
    return this.opts.registry;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async start(): Promise<void> {
    this.commands.start();
    if (this.opts.websocket) {
      this.hub.start();
      this.directorWatch.start();
      this.wss = new WebSocketServer({
        noServer: true,
        maxPayload: this.config.max_message_size,
        perMessageDeflate: false,
        clientTracking: false,
        handleProtocols: (protocols, req) => {
          if (protocols.has(SUBPROTOCOL_MSGPACK)) return SUBPROTOCOL_MSGPACK;
          if (protocols.has(SUBPROTOCOL_JSON)) return SUBPROTOCOL_JSON;
          // The native route offered only protocols it does not speak: echo one so the
          // handshake completes and the client can be told why with close 4009.
          if (this.nativeUpgrades.has(req) && protocols.size > 0) return protocols.values().next().value as string;
          return false;
        },
      });
      this.sweepTimer = setInterval(() => this.sweep(), 1000);
      if (this.config.overload_lag_ms > 0) this.lag.start();
    }
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.onRequest(req, res);
    const c = this.config;
    const server: Server =
      c.tls_cert_file && c.tls_key_file
        ? createTlsServer({ cert: readFileSync(c.tls_cert_file), key: readFileSync(c.tls_key_file), ...httpTimeouts(c) }, handler)
        : createServer(httpTimeouts(c), handler);
    if (this.opts.websocket) server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? this.config.server_port, this.config.server_host, LISTEN_BACKLOG, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await this.siblings?.start(server);
    this.log.info({ host: this.config.server_host, port: this.address?.port, websocket: this.opts.websocket }, 'edge listening');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.lag.stop();
    this.directorWatch.stop();
    for (const hook of this.stopHooks) hook();
    for (const c of [...this.connections]) c.close(CloseCodes.SHUTDOWN);
    await this.siblings?.stop();
    const server = this.server;
    if (server) {
      server.closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
    }
    for (const hook of this.drainHooks) await hook().catch(() => undefined);
    await this.hub.stop();
    await this.commands.stop();
    this.log.info('edge stopped');
  }

  // --- HTTP ---------------------------------------------------------------

  private stripBase(pathname: string): string | null {
    const base = this.config.server_base_url;
    if (!base) return pathname;
    if (pathname === base) return '/';
    return pathname.startsWith(base + '/') ? pathname.slice(base.length) : null;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    registerRequest(req, this.stats);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      sendError(res, new TidingsError(ErrorCodes.BAD_REQUEST, 'bad URL'));
      return;
    }
    const path = this.stripBase(url.pathname);
    if (path === null) {
      sendError(res, new TidingsError(ErrorCodes.NOT_FOUND, url.pathname));
      return;
    }
    try {
      if (path === '/healthz') {
        sendJson(res, 200, { status: 'ok', node: this.edgeId });
        return;
      }
      if (path === '/readyz') {
        void this.readiness().then((r) => sendJson(res, r.ready ? 200 : 503, r));
        return;
      }
      if (path === '/metrics' && this.config.metrics) {
        const text = this.opts.metricsText ?? (() => this.opts.registry.metrics());
        void text().then(
          (t) => sendText(res, 200, t, 'text/plain; version=0.0.4; charset=utf-8'),
          (err) => sendError(res, err),
        );
        return;
      }
      for (const route of this.routes) if (route(req, res, path, url)) return;
      if (path === '/ws' && this.opts.websocket) {
        sendError(res, new TidingsError(ErrorCodes.BAD_REQUEST, 'websocket upgrade required'));
        return;
      }
      sendError(res, new TidingsError(ErrorCodes.NOT_FOUND, path));
    } catch (err) {
      this.log.error({ err }, 'request failed');
      sendError(res, err);
    }
  }

  private async readiness(): Promise<{ ready: boolean; director: boolean; subscriber: boolean; node: string; dead?: string }> {
    if (this.loops.dead !== null) return { ready: false, director: false, subscriber: false, node: this.edgeId, dead: this.loops.dead };
    let director = false;
    try {
      await this.commands.request('ping', {}, 1000);
      director = true;
    } catch {
      director = false;
    }
    const subscriber = !this.opts.websocket || this.hub.connected;
    return { ready: director && subscriber && !this.stopped, director, subscriber, node: this.edgeId };
  }

  // --- websocket ----------------------------------------------------------

  private rejectUpgrade(socket: Duplex, status: number, err: TidingsError): void {
    const body = JSON.stringify({ error: toErrorBody(err) });
    const retryAfter = err.retryAfter === undefined ? '' : `Retry-After: ${Math.ceil(err.retryAfter)}\r\n`;
    socket.end(
      `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 503 ? 'Service Unavailable' : 'Bad Request'}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${retryAfter}Connection: close\r\n\r\n${body}`,
    );
  }

  /**
   * The event loop runs more than overload_lag_ms late (a reconnect storm: the
   * clients of a dead node all at once): a new connection would cost the
   * clients already here their latency and would itself wait past its
   * connect_timeout. Refused at the cost of a 503, its client backs off and
   * comes back when the storm has passed (Retry-After 1-4 s, at random, so
   * the refused do not all return together).
   */
  private overloaded(socket: Duplex): boolean {
    const limit = this.config.overload_lag_ms;
    if (limit <= 0 || this.lag.lagMs() <= limit) return false;
    this.metrics.overloaded.inc();
    const retryAfter = 1 + Math.floor(Math.random() * 4);
    this.rejectUpgrade(socket, 503, new TidingsError(ErrorCodes.OVERLOADED, `the event loop runs more than ${limit} ms late`, retryAfter));
    return true;
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Not an arrow here: it would share this call's closure context, which holds `req`,
    // and keep the request and its headers (~1.5 KB) alive for the connection's life.
    socket.on('error', destroySocket);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      this.rejectUpgrade(socket, 400, new TidingsError(ErrorCodes.BAD_REQUEST, 'bad URL'));
      return;
    }
    const path = this.stripBase(url.pathname);
    if (path === null) {
      this.rejectUpgrade(socket, 404, new TidingsError(ErrorCodes.NOT_FOUND, url.pathname));
      return;
    }
    if (this.stopped || this.connections.size >= this.config.max_connections) {
      this.rejectUpgrade(socket, 503, new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'connection limit reached'));
      return;
    }
    if (this.overloaded(socket)) return;
    // Features take the upgrades that are theirs (by path, query or subprotocol) before the native protocol.
    for (const hook of this.upgradeHooks) if (hook(req, socket, head, url, path)) return;
    if (path !== '/ws') {
      this.rejectUpgrade(socket, 404, new TidingsError(ErrorCodes.NOT_FOUND, url.pathname));
      return;
    }
    const token = url.searchParams.get('token');
    this.nativeUpgrades.add(req);
    this.wss!.handleUpgrade(req, socket, head, (ws) => {
      // ws listens for the socket's errors from here on: a second listener would keep an array per idle connection (~64 B).
      socket.removeListener('error', destroySocket);
      // The request's credential headers and address only serve auth_native (and cost a getpeername per connect).
      if (!this.refuseUnsupported(ws)) this.adoptNative(ws, socket as Socket, this.auth.usesRequest ? requestInfo(req) : null, token);
    });
  }

  /** Upgrade requests on the native route (the only one that refuses unknown subprotocols with 4009). */
  private readonly nativeUpgrades = new WeakSet<IncomingMessage>();

  /**
   * Upgrade handlers that take over some websocket connections (e.g. channelstream's /ws?conn_id=).
   * `path` is the request path without server_base_url. A hook returns true when it took the socket.
   */
  readonly upgradeHooks: Array<(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL, path: string) => boolean> = [];

  /** Run when the edge stops, before its connections close: features close the connections they hold. */
  readonly stopHooks: Array<() => void> = [];

  /** Run when the edge stops, after its connections closed and before the command socket closes (a last word to the director). */
  readonly drainHooks: Array<() => Promise<void>> = [];

  get webSocketServer(): WebSocketServer | null {
    return this.wss;
  }

  /** The native route offered only unknown subprotocols (one was echoed): tell the client why, 4009. */
  private refuseUnsupported(ws: WebSocket): boolean {
    if (ws.protocol === '' || ws.protocol === SUBPROTOCOL_JSON || ws.protocol === SUBPROTOCOL_MSGPACK) return false;
    const spec = CloseCodes.UNSUPPORTED_PROTOCOL;
    ws.close(spec.code, `${spec.reason}: ${ws.protocol} (use ${SUBPROTOCOL_JSON} or ${SUBPROTOCOL_MSGPACK})`.slice(0, 120));
    setTimeout(() => ws.terminate(), 2000).unref();
    return true;
  }

  /**
   * Serve the native protocol on a websocket (or on anything shaped like one:
   * the SockJS feature passes adapters). `token` from the URL authenticates at once.
   */
  adoptNative(ws: WebSocket, socket: Socket, request: RequestInfo | null, token: string | null): ClientConnection {
    socket.setNoDelay?.(true);
    const format: Format = ws.protocol === SUBPROTOCOL_MSGPACK ? 'msgpack' : 'json';
    const id = `${this.edgeId}.${randomIdPart()}`;
    const conn = new ClientConnection(id, ws, socket, format, this, this.log);
    conn.request = request;
    this.connections.add(conn);
    if (token !== null) {
      // Token in the URL: authenticate now and tell the client with a `connected` push.
      conn
        .connect(token)
        .then(
          (result) => conn.sendShared(this.pushFrame({ type: 'connected', ...(result as object) })),
          (err) => conn.sendShared(this.pushFrame({ type: 'error', error: toErrorBody(err) })),
        )
        .catch((err) => this.loops.failed('edge-client', err, { conn: id }));
    }
    return conn;
  }

  private pushFrame(value: unknown): { json: Buffer; msgpack: () => Buffer } {
    return { json: textFrame(Buffer.from(JSON.stringify(value))), msgpack: () => binaryFrame(encodeMsgpack(value)) };
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of this.connections) c.tick(now, this.pingFrame);
  }

  // --- EdgeContext --------------------------------------------------------

  async subscribe(conn: ClientConnection, channel: string, recoverParam: unknown): Promise<SubscribeOutcome> {
    const recover = parseRecover(recoverParam);
    // Live pushes wait until the reply (and a recovery's replay) has gone out.
    conn.hold(channel);
    let pos;
    try {
      pos = await this.hub.joinChannel(conn, channel);
    } catch (err) {
      conn.release(channel, Infinity);
      throw err;
    }
    if (!conn.markSubscribed(channel)) {
      this.hub.leaveChannel(conn, channel);
      conn.release(channel, Infinity);
      throw new TidingsError(ErrorCodes.UNAVAILABLE, 'connection closed');
    }
    const live = pos;
    try {
      await this.subscribed(conn, channel);
      if (!recover) return { result: { channel, offset: live.offset, epoch: live.epoch }, afterReply: () => conn.release(channel, live.offset) };
      return await recoverInto({ history: this.history, timeoutMs: this.config.command_timeout * 1000 }, conn, channel, live, recover);
    } catch (err) {
      // The client gets an error: it is not subscribed (it may try again).
      conn.subscriptions.delete(channel);
      conn.release(channel, Infinity);
      void this.unsubscribe(conn, channel);
      throw err;
    }
  }

  async unsubscribe(conn: ClientConnection, channel: string): Promise<void> {
    this.hub.leaveChannel(conn, channel);
    await this.unsubscribed(conn, channel);
  }

  /** Hooks for presence reporting, resolved once the director applied the change; replaced by the presence module. */
  subscribed: (conn: ClientConnection, channel: string) => Promise<void> | void = () => undefined;
  unsubscribed: (conn: ClientConnection, channel: string) => Promise<void> | void = () => undefined;
  connectedHook: (conn: ClientConnection) => void = () => undefined;
  closedHook: (conn: ClientConnection) => void = () => undefined;

  onConnected(conn: ClientConnection): void {
    this.connectedHook(conn);
  }

  noteAuthRefused(method: AuthMethod, reason: string, detail: string, fields: Record<string, unknown> = {}): void {
    this.stats.authRefusedBy(method, reason, detail, fields);
  }

  noteClosed(code: number): void {
    this.stats.closed(code);
  }

  /** Count a client websocket's close by code, whatever protocol it speaks (native connections count their own). */
  trackClose(ws: WebSocket): void {
    ws.once('close', (code: number) => this.stats.closed(code));
  }

  forget(conn: ClientConnection): void {
    if (!this.connections.delete(conn)) return;
    for (const ch of conn.subscriptions) {
      this.hub.leaveChannel(conn, ch);
      void this.unsubscribed(conn, ch);
    }
    conn.subscriptions.clear();
    if (conn.user !== null) this.hub.leaveUser(conn, conn.user);
    this.closedHook(conn);
  }

  /** Control messages from the director for this edge or all edges. */
  controlHandlers: Array<(body: Record<string, unknown>) => void> = [];

  private onControl(body: Record<string, unknown>): void {
    for (const h of this.controlHandlers) {
      try {
        h(body);
      } catch (err) {
        this.loops.failed('edge-control', err, { op: body['op'] });
      }
    }
  }

  /** Connections of this edge, for control actions. */
  *allConnections(): IterableIterator<ClientConnection> {
    yield* this.connections;
  }
}
