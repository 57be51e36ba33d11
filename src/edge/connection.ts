/**
 * One websocket client of the native protocol: authentication, commands,
 * replies and pushes. Writes go through the connection's Outbox; the ws
 * library parses incoming frames and handles control frames.
 */
import type { WebSocket } from 'ws';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { CloseCodes, ErrorCodes, TidingsError, toErrorBody, type CloseSpec, type ErrorSpec } from '../protocol/errors.js';
import { decodeFrame, encodeMsgpack, type Format } from '../protocol/codec.js';
import { METHODS, type Method } from '../protocol/messages.js';
import { channelProblem, grantsAllow } from '../protocol/names.js';
import type { Identity, RequestInfo } from '../auth/authenticator.js';
import { Outbox } from './outbox.js';
import { HeldPushes } from './held-pushes.js';
import { binaryFrame, textFrame, type SharedPush } from './frames.js';
import type { Listener } from './hub.js';
import type { EdgeContext } from './context.js';
import { historyQuery } from '../protocol/positions.js';

type State = 'connecting' | 'connected' | 'closed';


/** Commands a client may pipeline behind its connect. */
const MAX_QUEUED_BEHIND_CONNECT = 64;

/** Returned by a command that has sent its reply itself. */
const REPLIED = Symbol('replied');

export class ClientConnection implements Listener {
  state: State = 'connecting';
  identity: Identity | null = null;
  /** The opening request's credential headers and address (for auth_url); set by whoever accepts the connection. */
  request: RequestInfo | null = null;
  readonly subscriptions = new Set<string>();
  /** Channels whose subscribe is in progress; null when none (the usual case, and an idle connection's bytes count). */
  private joining: Set<string> | null = null;
  readonly openedAt = Date.now();
  lastSeen = Date.now();
  lastPing = Date.now();
  private readonly outbox: Outbox;
  private expiryTimer: NodeJS.Timeout | null = null;
  /** Made by the `log` getter on first use. */
  private logger: Logger | null = null;
  /** Set while a connect command is being processed. */
  private authenticating: Promise<void> | null = null;
  private queuedBehindConnect = 0;
  /** Live pushes held per channel during recovery. */
  private readonly held = new HeldPushes();

  constructor(
    readonly id: string,
    private readonly ws: WebSocket,
    socket: Socket,
    readonly format: Format,
    private readonly ctx: EdgeContext,
    private readonly parentLog: Logger,
  ) {
    this.outbox = new Outbox(socket, ctx.config.client_send_buffer, this, ctx.scheduler);
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onFrame(data, isBinary));
    ws.on('close', () => this.cleanup());
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'websocket error'));
  }

  /**
   * This connection's child logger, made on first use: a pino child per idle
   * connection would cost a few hundred bytes each and is rarely needed.
   */
  get log(): Logger {
    return (this.logger ??= this.parentLog.child(this.identity ? { conn: this.id, user: this.identity.user } : { conn: this.id }));
  }

  isClosed(): boolean {
    return this.state === 'closed';
  }

  get user(): string | null {
    return this.identity?.user ?? null;
  }

  // --- Listener -----------------------------------------------------------

  deliver(push: SharedPush): void {
    if (push.exceptUser !== null && push.exceptUser === this.user) return;
    const verdict = this.held.offer(push);
    if (verdict === 'held') return;
    if (verdict === 'overflow') {
      this.onOverflow();
      return;
    }
    this.outbox.push(this.format === 'json' ? push.forJson() : push.forMsgpack());
  }

  /** Hold live pushes of a channel while its missed messages are replayed. */
  hold(channel: string): void {
    this.held.hold(channel);
  }

  /**
   * Replay recovered messages, then the held live ones after `after`, in
   * offset order and without duplicates, and go live.
   */
  release(channel: string, replay: readonly Buffer[], after: number): void {
    const held = this.held.release(channel, after);
    if (this.state === 'closed') return;
    for (const json of replay) this.outbox.push(this.format === 'json' ? textFrame(json) : binaryFrame(encodeMsgpack(JSON.parse(json.toString('utf8')))));
    for (const push of held) this.outbox.push(this.format === 'json' ? push.forJson() : push.forMsgpack());
  }

  onGap(channel: string): void {
    this.close(CloseCodes.MESSAGE_GAP, channel);
  }

  onOverflow(): void {
    this.ctx.metrics.slowConsumers.inc();
    this.log.warn({ pending: this.outbox.pending }, 'slow consumer cut off');
    this.outbox.close();
    this.close(CloseCodes.SLOW_CONSUMER);
  }

  // --- output -------------------------------------------------------------

  private send(value: unknown): void {
    if (this.state === 'closed') return;
    if (this.format === 'json') this.outbox.push(textFrame(Buffer.from(JSON.stringify(value))));
    else this.outbox.push(binaryFrame(encodeMsgpack(value)));
  }

  sendShared(frame: { json: Buffer; msgpack: () => Buffer }): void {
    this.outbox.push(this.format === 'json' ? frame.json : frame.msgpack());
  }

  private reply(id: number, result: unknown): void {
    this.send({ id, result });
  }

  private replyError(id: number, err: unknown): void {
    if (!(err instanceof TidingsError)) this.log.error({ err }, 'command failed');
    this.send({ id, error: toErrorBody(err) });
  }

  close(spec: CloseSpec, detail?: string): void {
    if (this.state === 'closed') return;
    this.log.debug({ code: spec.code, detail }, 'closing connection');
    this.outbox.flush();
    this.state = 'closed';
    const reason = detail ? `${spec.reason}: ${detail}`.slice(0, 120) : spec.reason;
    try {
      this.ws.close(spec.code, reason);
    } catch {
      this.ws.terminate();
    }
    // A peer that never answers the close handshake is cut after a grace period.
    setTimeout(() => this.ws.terminate(), 2000).unref();
    this.cleanup();
  }

  private cleanup(): void {
    if (this.state !== 'closed') this.state = 'closed';
    this.outbox.close();
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    this.ctx.forget(this);
  }

  // --- input --------------------------------------------------------------

  private onFrame(data: Buffer, isBinary: boolean): void {
    this.lastSeen = Date.now();
    if (this.state === 'closed') return;
    let items: unknown[];
    try {
      if (this.format === 'json' && isBinary) throw new Error('binary frame on a JSON connection');
      items = decodeFrame(this.format, this.format === 'json' ? data.toString('utf8') : data);
    } catch (err) {
      this.close(CloseCodes.BAD_REQUEST, (err as Error).message);
      return;
    }
    for (const item of items) {
      if (this.isClosed()) return;
      this.onMessage(item);
    }
  }

  private onMessage(item: unknown): void {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      this.close(CloseCodes.BAD_REQUEST, 'each frame must hold JSON objects');
      return;
    }
    const msg = item as Record<string, unknown>;
    if (msg['type'] === 'pong') return;
    const id = msg['id'];
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
      this.close(CloseCodes.BAD_REQUEST, 'a command needs a numeric id');
      return;
    }
    const method = msg['method'];
    if (typeof method !== 'string' || !(METHODS as readonly string[]).includes(method)) {
      this.replyError(id, new TidingsError(ErrorCodes.METHOD_NOT_FOUND, `unknown method ${JSON.stringify(String(method).slice(0, 40))}`));
      return;
    }
    const params = msg['params'] ?? {};
    if (typeof params !== 'object' || params === null || Array.isArray(params)) {
      this.replyError(id, new TidingsError(ErrorCodes.BAD_REQUEST, 'params must be an object'));
      return;
    }
    if (method !== 'connect' && this.state === 'connecting' && this.authenticating) {
      // Commands pipelined behind connect run once it settles, in order.
      if (this.queuedBehindConnect >= MAX_QUEUED_BEHIND_CONNECT) {
        this.replyError(id, new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'too many commands sent before connect completed'));
        return;
      }
      this.queuedBehindConnect++;
      void this.authenticating.finally(() => {
        this.queuedBehindConnect--;
        if (!this.isClosed()) this.onMessage(item);
      });
      return;
    }
    if (method !== 'connect' && this.state !== 'connected') {
      this.replyError(id, new TidingsError(ErrorCodes.UNAUTHORIZED));
      return;
    }
    const running = this.run(id, method as Method, params as Record<string, unknown>);
    if (method === 'connect' && this.state === 'connecting' && !this.authenticating) {
      const settled = (): void => {
        this.authenticating = null;
      };
      this.authenticating = running.then(settled, settled);
    }
    running.then(
      (result) => {
        if (result !== REPLIED) this.reply(id, result);
      },
      (err) => this.replyError(id, err),
    );
  }

  private async run(id: number, method: Method, params: Record<string, unknown>): Promise<unknown> {
    switch (method) {
      case 'connect':
        return this.connect(params['token']);
      case 'subscribe':
        return this.subscribe(id, params);
      case 'unsubscribe':
        return this.unsubscribe(params);
      case 'publish':
        return this.publish(params);
      case 'history':
        return this.history(params);
      case 'ping':
        return {};
      default: {
        const handler = this.ctx.extraMethods.get(method);
        if (!handler) throw new TidingsError(ErrorCodes.METHOD_NOT_FOUND, `${method} is not available on this server`);
        void id;
        return handler(this, params);
      }
    }
  }

  /** Authenticate with a token (or anonymously); also used for ?token= at upgrade. */
  async connect(token: unknown): Promise<unknown> {
    if (this.state !== 'connecting' || this.identity) throw new TidingsError(ErrorCodes.ALREADY_CONNECTED);
    if (token !== undefined && typeof token !== 'string') throw new TidingsError(ErrorCodes.BAD_REQUEST, 'token must be a string');
    let identity: Identity;
    try {
      identity = await this.ctx.auth.authenticate(token, this.request);
    } catch (err) {
      const spec: ErrorSpec = err instanceof TidingsError ? err.spec : ErrorCodes.TOKEN_INVALID;
      this.ctx.noteAuthRefused?.('token', spec.name, (err as Error).message);
      // Tell the client why, then close: a bad token will not get better on this connection.
      const close =
        spec === ErrorCodes.TOKEN_EXPIRED
          ? CloseCodes.TOKEN_EXPIRED
          : spec === ErrorCodes.AUTH_UNAVAILABLE
            ? CloseCodes.AUTH_UNAVAILABLE
            : spec === ErrorCodes.AUTH_DENIED
              ? CloseCodes.AUTH_FAILED
              : CloseCodes.TOKEN_INVALID;
      setImmediate(() => this.close(close));
      throw err;
    }
    if (this.state !== 'connecting') throw new TidingsError(ErrorCodes.UNAVAILABLE, 'connection closed');
    this.identity = identity;
    try {
      if (identity.user !== null) {
        await this.ctx.hub.joinUser(this, identity.user);
        if (this.isClosed()) {
          this.ctx.hub.leaveUser(this, identity.user);
          throw new TidingsError(ErrorCodes.UNAVAILABLE, 'connection closed');
        }
      } else if (this.ctx.commands.suspectUnreachable) {
        // Anonymous connections hold no user topic; while the director is in doubt, ask it once.
        await this.ctx.commands.request('ping', {}, 1000);
      }
    } catch (err) {
      // Without the director this connection can do nothing: say so (113) and close with 4008 so the client retries, here or elsewhere.
      this.identity = null;
      if (err instanceof TidingsError && (err.spec === ErrorCodes.UNAVAILABLE || err.spec === ErrorCodes.TIMEOUT)) {
        setImmediate(() => this.close(CloseCodes.UNAVAILABLE, err.message));
        throw new TidingsError(ErrorCodes.UNAVAILABLE, err.message);
      }
      throw err;
    }
    this.state = 'connected';
    this.logger = null; // bound again with the user on next use
    if (identity.expires !== null) {
      const ms = identity.expires * 1000 - Date.now();
      this.expiryTimer = setTimeout(() => this.close(CloseCodes.TOKEN_EXPIRED), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
      this.expiryTimer.unref();
    }
    this.ctx.onConnected(this);
    this.log.debug({ user: identity.user, anonymous: identity.user === null, expires: identity.expires }, 'connected');
    const c = this.ctx.config;
    return {
      client: this.id,
      user: identity.user,
      ping: c.ping_interval,
      idle_timeout: c.idle_timeout,
      expires: identity.expires,
      node: this.ctx.edgeId,
    };
  }

  private channelParam(params: Record<string, unknown>): string {
    const channel = params['channel'];
    const problem = channelProblem(channel);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    return channel as string;
  }

  private async subscribe(id: number, params: Record<string, unknown>): Promise<unknown> {
    const channel = this.channelParam(params);
    if (!grantsAllow(this.identity!.subscribe, channel)) {
      throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not subscribe to ${channel}`);
    }
    await this.identity!.check?.('subscribe', channel);
    const joining = (this.joining ??= new Set());
    if (this.subscriptions.has(channel) || joining.has(channel)) throw new TidingsError(ErrorCodes.ALREADY_SUBSCRIBED, channel);
    if (this.subscriptions.size + joining.size >= this.ctx.config.max_subscriptions) {
      throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${this.ctx.config.max_subscriptions} subscriptions per connection`);
    }
    joining.add(channel);
    try {
      const { result, afterReply } = await this.ctx.subscribe(this, channel, params['recover']);
      // The reply goes first, then any replayed messages and the live stream.
      this.reply(id, result);
      afterReply();
      return REPLIED;
    } finally {
      joining.delete(channel);
      if (joining.size === 0) this.joining = null;
    }
  }

  /** Called by the edge once the hub has the listener in place. */
  markSubscribed(channel: string): boolean {
    if (this.state === 'closed') return false;
    this.subscriptions.add(channel);
    return true;
  }

  private unsubscribe(params: Record<string, unknown>): unknown {
    const channel = this.channelParam(params);
    if (!this.subscriptions.has(channel)) throw new TidingsError(ErrorCodes.NOT_SUBSCRIBED, channel);
    this.subscriptions.delete(channel);
    this.ctx.unsubscribe(this, channel);
    return {};
  }

  private async publish(params: Record<string, unknown>): Promise<unknown> {
    const channel = this.channelParam(params);
    if (!grantsAllow(this.identity!.publish, channel)) {
      throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not publish to ${channel}`);
    }
    await this.identity!.check?.('publish', channel);
    if (!('data' in params)) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'data is required');
    // The sender is the token's user, never anything the client says.
    return this.ctx.commands.request('publish', {
      channel,
      data: params['data'],
      sender: this.identity!.user,
      no_history: params['no_history'] === true,
    });
  }

  private history(params: Record<string, unknown>): Promise<unknown> {
    const channel = this.channelParam(params);
    if (!grantsAllow(this.identity!.history, channel)) {
      throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not read the history of ${channel}`);
    }
    return this.ctx.commands.request('history', historyQuery(channel, params));
  }

  /** Heartbeat bookkeeping, called by the edge's sweep once a second. */
  tick(now: number, pingFrame: { json: Buffer; msgpack: () => Buffer }): void {
    const c = this.ctx.config;
    if (this.state === 'connecting') {
      if (now - this.openedAt > c.connect_timeout * 1000) this.close(CloseCodes.CONNECT_TIMEOUT);
      return;
    }
    if (this.state !== 'connected') return;
    if (now - this.lastSeen > c.idle_timeout * 1000) {
      this.close(CloseCodes.IDLE_TIMEOUT);
      return;
    }
    if (now - this.lastPing >= c.ping_interval * 1000) {
      this.lastPing = now;
      this.sendShared(pingFrame);
    }
  }
}
