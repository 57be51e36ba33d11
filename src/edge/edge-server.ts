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
import { parseRecover } from '../protocol/positions.js';
import { EdgeStats, type AuthMethod } from './stats.js';
import { registerRequest } from './refusals.js';

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
  /** The node's other edge workers, for requests that must reach the worker holding a session. */
  siblings?: SiblingOptions;
}

/** Credential headers and address of a request, as authenticators see them. */
export function requestInfo(req: IncomingMessage): RequestInfo {
  return { headers: credentialHeaders(req.headers), remoteAddress: req.socket.remoteAddress ?? null };
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
  readonly metrics: { slowConsumers: Counter; connections: Gauge };
  /** Auth refusals, closes by code, bytes and deliveries: counted for /metrics, logged with reasons. */
  readonly stats: EdgeStats;
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
    this.httpAuth = c.auth_url
      ? new HttpAuthenticator({ url: c.auth_url, timeoutMs: c.auth_timeout * 1000, cacheTtlMs: c.auth_cache_ttl * 1000, cacheSize: c.auth_cache_size, secret: c.secret })
      : null;
    this.auth = new Authenticator({
      tokenSecret: c.token_secret,
      allowAnonymous: c.allow_anonymous,
      anonymousChannels: c.anonymous_channels,
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
      onChannelMessage: () => this.scheduler.noteMessage(),
    });
    const connections = this.connections;
    this.metrics = {
      slowConsumers: new Counter({ name: 'tidings_edge_slow_consumers_total', help: 'Clients cut off for exceeding the send buffer', registers: [opts.registry] }),
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
      this.wss = new WebSocketServer({
        noServer: true,
        maxPayload: this.config.max_message_size,
        perMessageDeflate: false,
        clientTracking: false,
        handleProtocols: (protocols) => {
          if (protocols.has(SUBPROTOCOL_MSGPACK)) return SUBPROTOCOL_MSGPACK;
          if (protocols.has(SUBPROTOCOL_JSON)) return SUBPROTOCOL_JSON;
          return false;
        },
      });
      this.sweepTimer = setInterval(() => this.sweep(), 1000);
    }
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.onRequest(req, res);
    const c = this.config;
    const server: Server =
      c.tls_cert_file && c.tls_key_file
        ? createTlsServer({ cert: readFileSync(c.tls_cert_file), key: readFileSync(c.tls_key_file), keepAliveTimeout: 5000 }, handler)
        : createServer({ keepAliveTimeout: 5000 }, handler);
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    if (this.opts.websocket) server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? this.config.server_port, this.config.server_host, () => {
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

  private async readiness(): Promise<{ ready: boolean; director: boolean; subscriber: boolean; node: string }> {
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
    socket.end(
      `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 503 ? 'Service Unavailable' : 'Bad Request'}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
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
    // Features take the upgrades that are theirs (by path, query or subprotocol) before the native protocol.
    for (const hook of this.upgradeHooks) if (hook(req, socket, head, url, path)) return;
    if (path !== '/ws') {
      this.rejectUpgrade(socket, 404, new TidingsError(ErrorCodes.NOT_FOUND, url.pathname));
      return;
    }
    const token = url.searchParams.get('token');
    this.wss!.handleUpgrade(req, socket, head, (ws) => this.adoptNative(ws, socket as Socket, requestInfo(req), token));
  }

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

  /**
   * Serve the native protocol on a websocket (or on anything shaped like one:
   * the SockJS feature passes adapters). `token` from the URL authenticates at once.
   */
  adoptNative(ws: WebSocket, socket: Socket, request: RequestInfo, token: string | null): ClientConnection {
    socket.setNoDelay?.(true);
    const format: Format = ws.protocol === SUBPROTOCOL_MSGPACK ? 'msgpack' : 'json';
    const id = `${this.edgeId}.${randomBytes(9).toString('base64url')}`;
    const conn = new ClientConnection(id, ws, socket, format, this, this.log);
    conn.request = request;
    this.connections.add(conn);
    this.trackClose(ws);
    if (token !== null) {
      // Token in the URL: authenticate now and tell the client with a `connected` push.
      conn.connect(token).then(
        (result) => conn.sendShared(this.pushFrame({ type: 'connected', ...(result as object) })),
        (err) => conn.sendShared(this.pushFrame({ type: 'error', error: toErrorBody(err) })),
      );
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
    if (recover) conn.hold(channel);
    let pos;
    try {
      pos = await this.hub.joinChannel(conn, channel);
    } catch (err) {
      if (recover) conn.release(channel, [], Infinity);
      throw err;
    }
    if (!conn.markSubscribed(channel)) {
      this.hub.leaveChannel(conn, channel);
      throw new TidingsError(ErrorCodes.UNAVAILABLE, 'connection closed');
    }
    this.subscribed(conn, channel);
    if (!recover) return { result: { channel, offset: pos.offset, epoch: pos.epoch }, afterReply: () => undefined };
    try {
      return await recoverInto(this.commands, conn, channel, pos, recover);
    } catch (err) {
      conn.release(channel, [], pos.offset);
      throw err;
    }
  }

  unsubscribe(conn: ClientConnection, channel: string): void {
    this.hub.leaveChannel(conn, channel);
    this.unsubscribed(conn, channel);
  }

  /** Hooks for presence reporting; replaced by the presence module. */
  subscribed: (conn: ClientConnection, channel: string) => void = () => undefined;
  unsubscribed: (conn: ClientConnection, channel: string) => void = () => undefined;
  connectedHook: (conn: ClientConnection) => void = () => undefined;
  closedHook: (conn: ClientConnection) => void = () => undefined;

  onConnected(conn: ClientConnection): void {
    this.connectedHook(conn);
  }

  noteAuthRefused(method: AuthMethod, reason: string, detail: string, fields: Record<string, unknown> = {}): void {
    this.stats.authRefusedBy(method, reason, detail, fields);
  }

  /** Count a client websocket's close by code, whatever protocol it speaks. */
  trackClose(ws: WebSocket): void {
    ws.once('close', (code: number) => this.stats.closed(code));
  }

  forget(conn: ClientConnection): void {
    if (!this.connections.delete(conn)) return;
    for (const ch of conn.subscriptions) {
      this.hub.leaveChannel(conn, ch);
      this.unsubscribed(conn, ch);
    }
    conn.subscriptions.clear();
    if (conn.user !== null) this.hub.leaveUser(conn, conn.user);
    this.closedHook(conn);
  }

  /** Control messages from the director for this edge or all edges. */
  controlHandlers: Array<(body: Record<string, unknown>) => void> = [];

  private onControl(body: Record<string, unknown>): void {
    for (const h of this.controlHandlers) h(body);
  }

  /** Connections of this edge, for control actions. */
  *allConnections(): IterableIterator<ClientConnection> {
    yield* this.connections;
  }
}
