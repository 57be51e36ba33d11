/**
 * One websocket client of the native protocol: authentication, commands,
 * replies and pushes. Writes go through the connection's Outbox; the ws
 * library parses incoming frames and handles control frames.
 */
import type { WebSocket } from 'ws';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { CloseCodes, ErrorCodes, TidingsError, toErrorBody, type CloseSpec, type ErrorSpec } from '../protocol/errors.js';
import { decodeFrame, decodeJsonFrameReadingPublishes, encodeMsgpack, type Format, type MakePublish } from '../protocol/codec.js';
import { METHODS, type Method } from '../protocol/messages.js';
import { channelProblem, grantsAllow } from '../protocol/names.js';
import type { Identity, RequestInfo } from '../auth/authenticator.js';
import { Outbox, closeGraceMs } from './outbox.js';
import { HeldPushes } from './held-pushes.js';
import { binaryFrame, frameHeaderBytes, textFrame, textFrameAround, type PushRun, type SharedPush } from './frames.js';
import { ReplyLines, replyLineBytes } from './reply-lines.js';
import type { Listener } from './hub.js';
import type { EdgeContext } from './context.js';
import { historyQuery } from '../protocol/positions.js';
import { HistoryAllowance, HISTORY_PAGE_BYTES, readInSteps, type Page } from './history-reader.js';
import type { GapKind } from './hub.js';
import { checkValueDepth } from '../protocol/payload.js';
import { RawJson, type ReplyTarget } from '../zmq/command-client.js';
import { CompactSet } from '../runtime/compact-set.js';

type State = 'connecting' | 'connected' | 'closed';


/** Commands a client may pipeline behind its connect. */
const MAX_QUEUED_BEHIND_CONNECT = 64;

/** Returned by a command that has sent its reply itself. */
const REPLIED = Symbol('replied');

const COMMA = Buffer.from(',');
const CLOSE_MESSAGES = Buffer.from(']}}');

/** The connection a websocket serves, for the websocket's listeners (shared functions, not closures per connection). */
const SERVES = Symbol('tidings.connection');
type ServingSocket = WebSocket & { [SERVES]: ClientConnection };

export class ClientConnection implements Listener {
  state: State = 'connecting';
  identity: Identity | null = null;
  /** The opening request's credential headers and address (for auth_url), until the connect; set by whoever accepts the connection. */
  request: RequestInfo | null = null;
  /** Nearly always one channel: a CompactSet is 40 B where a Set is 150 B. */
  readonly subscriptions = new CompactSet<string>();
  /** Channels whose subscribe is in progress; null when none (the usual case, and an idle connection's bytes count). */
  private joining: Set<string> | null = null;
  readonly openedAt = Date.now();
  lastSeen = Date.now();
  lastPing = Date.now();
  private readonly outbox: Outbox;
  /** Made by the `log` getter on first use. */
  private logger: Logger | null = null;
  /** Set while a connect command is being processed. */
  private authenticating: Promise<void> | null = null;
  /** A connect (command or ?token=) has begun: any other connect is refused with 112. */
  private connectStarted = false;
  private queuedBehindConnect = 0;
  /** The channel last published to, found valid and granted (a publisher keeps naming the same one; the identity does not change). */
  private publishGranted: string | null = null;
  /** The array readFrame reads a frame's items into, reused (null while a frame is being read). */
  private frameItems: unknown[] | null = [];
  /** Publish replies in this connection's newest ReplyLines: the next one is made ready for as many. */
  private repliesInItem = 0;
  /** Live pushes held per channel during recovery. */
  private readonly held = new HeldPushes();
  /** Commands run and not yet answered (client_max_inflight). */
  private inFlight = 0;
  /** Reading paused because the client reached client_max_inflight. */
  private paused = false;
  /** Bytes of history this connection may still read (client_history_bytes per client_history_window); made on first use. */
  private historyAllowance: HistoryAllowance | null = null;
  /** The recovery in progress per channel: a newer one, or an unsubscribe, stops an older one. */
  private recovering: Map<string, object> | null = null;
  /** History pages of this connection are read one at a time (see inHistoryLane). */
  private historyLane: Promise<unknown> | null = null;

  constructor(
    readonly id: string,
    private readonly ws: WebSocket,
    socket: Socket,
    readonly format: Format,
    private readonly ctx: EdgeContext,
    private readonly parentLog: Logger,
  ) {
    this.outbox = new Outbox(socket, ctx.config.client_send_buffer, this, ctx.scheduler);
    // The listeners are the same three functions for every connection, which they find on the
    // websocket (`this` of an EventEmitter's listener): three closures and their context cost an
    // idle connection ~200 B. The close is counted here rather than by a listener of its own
    // (EdgeServer.trackClose): a once() wrapper per idle connection cost ~150 bytes.
    (ws as ServingSocket)[SERVES] = this;
    ws.on('message', ClientConnection.onMessage);
    ws.on('close', ClientConnection.onClose);
    ws.on('error', ClientConnection.onError);
  }

  private static onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
    (this as ServingSocket)[SERVES].onFrame(data, isBinary);
  }

  private static onClose(this: WebSocket, code: number): void {
    const conn = (this as ServingSocket)[SERVES];
    conn.cleanup();
    conn.ctx.noteClosed(code);
  }

  private static onError(this: WebSocket, err: Error): void {
    (this as ServingSocket)[SERVES].debug({ err: err.message }, 'websocket error');
  }

  /**
   * This connection's child logger, made on first use: a pino child per idle
   * connection would cost a few hundred bytes each and is rarely needed.
   */
  get log(): Logger {
    return (this.logger ??= this.parentLog.child(this.identity ? { conn: this.id, user: this.identity.user } : { conn: this.id }));
  }

  /**
   * A debug line, only when debug is on: the `log` getter makes a pino child
   * logger, which every connect and close made (and an idle connection then
   * kept, ~250 bytes) for a line that is not written at the default level.
   */
  private debug(fields: Record<string, unknown>, msg: string): void {
    if (this.parentLog.isLevelEnabled('debug')) this.log.debug(fields, msg);
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
    this.outbox.push(this.format === 'json' ? push : push.forMsgpack());
  }

  /** A run of a channel's messages: queued whole for a JSON client not holding the channel, else push by push. */
  deliverRun(run: PushRun): void {
    if (this.format === 'json' && !this.held.holds(run.channel)) {
      this.outbox.push(run);
      return;
    }
    // One push this client's format cannot carry is counted and skipped, as the hub does for a push alone.
    for (let i = 0; i < run.count; i++) {
      try {
        this.deliver(run.push(i));
      } catch (err) {
        this.ctx.loops.failed('edge-delivery', err, { conn: this.id, channel: run.channel });
      }
    }
  }

  /** Deliver one push, counting (not throwing) a push this client's format cannot carry. */
  private deliverSafely(push: SharedPush): void {
    try {
      this.outbox.push(this.format === 'json' ? push : push.forMsgpack());
    } catch (err) {
      this.ctx.loops.failed('edge-delivery', err, { conn: this.id, channel: push.channel });
    }
  }

  /** Hold live pushes of a channel while its missed messages are replayed. */
  hold(channel: string): void {
    this.held.hold(channel);
  }

  /** Write recovered messages (client JSON pushes, in offset order). */
  replay(pushes: readonly Buffer[]): void {
    if (this.state === 'closed') return;
    for (const json of pushes) {
      if (this.format === 'json') {
        this.outbox.push(textFrame(json));
        continue;
      }
      try {
        this.outbox.push(binaryFrame(encodeMsgpack(JSON.parse(json.toString('utf8')))));
      } catch (err) {
        // Stored messages passed the publish doors; one that still cannot be encoded is counted and skipped.
        this.ctx.loops.failed('edge-replay', err, { conn: this.id });
      }
    }
  }

  /** Stop holding a channel: write the held live pushes after `after` (without duplicates) and go live. */
  release(channel: string, after: number): void {
    const held = this.held.release(channel, after);
    if (this.state === 'closed') return;
    for (const push of held) this.deliverSafely(push);
  }

  /** Mark a recovery of `channel` as the current one; returns its token. */
  beginRecovery(channel: string): object {
    const token = {};
    (this.recovering ??= new Map()).set(channel, token);
    return token;
  }

  /** Whether the recovery with this token should go on (same recovery, still subscribed, open). */
  recoveryWanted(channel: string, token: object): boolean {
    return this.state !== 'closed' && this.recovering?.get(channel) === token;
  }

  endRecovery(channel: string, token: object): void {
    if (this.recovering?.get(channel) !== token) return;
    this.recovering.delete(channel);
    if (this.recovering.size === 0) this.recovering = null;
  }

  /** This connection's history allowance (client_history_bytes per client_history_window). */
  get allowance(): HistoryAllowance {
    const c = this.ctx.config;
    return (this.historyAllowance ??= new HistoryAllowance(c.client_history_bytes, c.client_history_window * 1000, Date.now()));
  }

  /** Resolves true once this client's send buffer holds at most `bytes` (flow control of history pages). */
  whenBelow(bytes: number, timeoutMs: number): Promise<boolean> {
    return this.outbox.whenBelow(bytes, timeoutMs);
  }

  /**
   * Run `read` (wait for room in the send buffer, fetch a page, write it) when
   * the connection's previous history page is done: with one page at a time,
   * what a client's history reads add to its send buffer stays under the mark
   * plus one page, however many reads it pipelines.
   */
  inHistoryLane<T>(read: () => Promise<T>): Promise<T> {
    const run = (this.historyLane ?? Promise.resolve()).then(read, read);
    this.historyLane = run.catch(() => undefined);
    return run;
  }

  /** The largest history page for this client: a quarter of its send buffer, so one always fits. */
  get pageBytes(): number {
    return Math.min(HISTORY_PAGE_BYTES, Math.floor(this.ctx.config.client_send_buffer / 4));
  }

  /**
   * The channel's stream broke at this edge: a hole in its offsets (4006,
   * recovery replays what was missed) or a new epoch, i.e. the director
   * restarted (4008, recovery replays the new epoch's history).
   */
  onGap(channel: string, kind: GapKind = 'hole'): void {
    this.close(kind === 'epoch' ? CloseCodes.UNAVAILABLE : CloseCodes.MESSAGE_GAP, channel);
  }

  onOverflow(): void {
    this.ctx.metrics.slowConsumers.inc();
    this.log.warn({ pending: this.outbox.pending }, 'slow consumer cut off');
    this.outbox.close();
    this.close(CloseCodes.SLOW_CONSUMER);
  }

  // --- output -------------------------------------------------------------

  private encode(value: unknown): Buffer {
    return this.format === 'json' ? textFrame(Buffer.from(JSON.stringify(value))) : binaryFrame(encodeMsgpack(value));
  }

  private send(value: unknown): void {
    if (this.state === 'closed') return;
    this.outbox.push(this.encode(value));
  }

  sendShared(frame: { json: Buffer; msgpack: () => Buffer }): void {
    this.outbox.push(this.format === 'json' ? frame.json : frame.msgpack());
  }

  /**
   * A result that cannot be encoded (a history holding a value too deep for
   * MessagePack, which the publish doors should have refused) is answered
   * with an internal error, counted; it never escapes as an exception.
   */
  private reply(id: number, result: unknown): void {
    if (this.state === 'closed') return;
    let frame: Buffer;
    try {
      if (result instanceof RawJson) {
        // The director's JSON text as it came (publish acknowledgements): not parsed and re-encoded.
        frame = this.format === 'json' ? textFrameAround(`{"id":${id},"result":`, result.json, '}') : this.encode({ id, result: result.parse() });
      } else frame = this.encode({ id, result });
    } catch (err) {
      this.ctx.loops.failed('edge-reply', err, { conn: this.id });
      frame = this.encode({ id, error: toErrorBody(new TidingsError(ErrorCodes.INTERNAL, 'the reply could not be encoded')) });
    }
    this.outbox.push(frame);
  }

  private replyError(id: number, err: unknown): void {
    if (!(err instanceof TidingsError)) this.log.error({ err }, 'command failed');
    this.send({ id, error: toErrorBody(err) });
  }

  close(spec: CloseSpec, detail?: string): void {
    if (this.state === 'closed') return;
    this.debug({ code: spec.code, detail }, 'closing connection');
    this.outbox.flushAll();
    this.state = 'closed';
    const reason = detail ? `${spec.reason}: ${detail}`.slice(0, 120) : spec.reason;
    try {
      this.ws.close(spec.code, reason);
    } catch {
      this.ws.terminate();
    }
    // A peer that never answers the close handshake is cut after a grace period.
    setTimeout(() => this.ws.terminate(), closeGraceMs(spec)).unref();
    this.cleanup();
  }

  private cleanup(): void {
    if (this.state !== 'closed') this.state = 'closed';
    this.outbox.close();
    this.ctx.forget(this);
  }

  // --- input --------------------------------------------------------------

  /** Whatever goes wrong with one client's frame ends at most that client's connection (1011). */
  private onFrame(data: Buffer, isBinary: boolean): void {
    try {
      this.readFrame(data, isBinary);
    } catch (err) {
      this.failed(err);
    }
  }

  private failed(err: unknown): void {
    this.ctx.loops.failed('edge-client', err, { conn: this.id });
    this.close(CloseCodes.INTERNAL);
  }

  private readFrame(data: Buffer, isBinary: boolean): void {
    this.lastSeen = Date.now();
    if (this.state === 'closed') return;
    let items: unknown[];
    // The array a connected JSON client's frames are read into, reused frame after frame (none while one is
    // being read: a frame read meanwhile would get an array of its own).
    const reused = this.frameItems ?? [];
    this.frameItems = null;
    try {
      try {
        if (this.format === 'json' && isBinary) throw new Error('binary frame on a JSON connection');
        // A connected JSON client's plain publish commands are read in place (PublishLine): their data is
        // neither parsed into objects nor written out again, but goes to the director as the client's bytes.
        if (this.format !== 'json') items = decodeFrame(this.format, data);
        else items = this.state === 'connected' ? decodeJsonFrameReadingPublishes(data, this.publishLine, reused) : decodeFrame('json', data.toString('utf8'));
      } catch (err) {
        this.close(CloseCodes.BAD_REQUEST, (err as Error).message);
        return;
      }
      for (const item of items) {
        if (this.isClosed()) return;
        if (item instanceof PublishLine) this.onPublishLine(item);
        else this.onMessage(item);
      }
    } finally {
      // Emptied, so it keeps no line (nor the frame its lines read) alive until the next frame.
      reused.length = 0;
      this.frameItems = reused;
    }
    // A client at its in-flight limit is not read until half its commands are answered:
    // pipelining faster than it is served costs it time, not this edge's CPU.
    // (A connection over SockJS has no socket to pause: there the 135 replies are the limit.)
    if (this.inFlight >= this.ctx.config.client_max_inflight && !this.paused && typeof this.ws.pause === 'function') {
      this.paused = true;
      this.ws.pause();
    }
  }

  /** One of this connection's commands was answered. */
  private commandDone(): void {
    this.inFlight--;
    if (this.paused && this.inFlight <= this.ctx.config.client_max_inflight / 2 && !this.isClosed()) {
      this.paused = false;
      this.ws.resume();
    }
  }

  /**
   * A publish read in place, from a connected client: what onMessage does for
   * a publish (its id, method and params are well formed), then publishTo.
   */
  private onPublishLine(line: PublishLine): void {
    const limit = this.ctx.config.client_max_inflight;
    if (this.inFlight >= limit) {
      this.ctx.metrics.limited.inc({ code: '135' });
      this.replyError(line.id, new TidingsError(ErrorCodes.TOO_MANY_COMMANDS, `at most ${limit} commands in flight per connection`));
      return;
    }
    this.inFlight++;
    this.publishTo(line, line);
  }

  /** readPublishLine's maker: a publish line is its command and the target of its reply in one object. */
  private readonly publishLine: MakePublish<PublishLine> = (id, channel, frame, dataStart, dataEnd, noHistory) =>
    new PublishLine(this, id, channel, frame, dataStart, dataEnd, noHistory);

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
        try {
          if (!this.isClosed()) this.onMessage(item);
        } catch (err) {
          this.failed(err);
        }
      });
      return;
    }
    if (method !== 'connect' && this.state !== 'connected') {
      this.replyError(id, new TidingsError(ErrorCodes.UNAUTHORIZED));
      return;
    }
    const limit = this.ctx.config.client_max_inflight;
    if (this.inFlight >= limit) {
      this.ctx.metrics.limited.inc({ code: '135' });
      this.replyError(id, new TidingsError(ErrorCodes.TOO_MANY_COMMANDS, `at most ${limit} commands in flight per connection`));
      return;
    }
    this.inFlight++;
    if (method === 'publish') {
      this.publishTo(params as Record<string, unknown>, new PublishReply(this, id));
      return;
    }
    const running = this.run(id, method as Method, params as Record<string, unknown>);
    if (method === 'connect' && this.state === 'connecting' && !this.authenticating) {
      const settled = (): void => {
        this.authenticating = null;
      };
      this.authenticating = running.then(settled, settled);
    }
    running
      .then(
        (result) => {
          this.commandDone();
          if (result !== REPLIED) this.reply(id, result);
        },
        (err) => {
          this.commandDone();
          this.replyError(id, err);
        },
      )
      .catch((err) => this.failed(err));
  }

  /** Every command but publish (answered by publishTo without run()'s promise). */
  private async run(id: number, method: Method, params: Record<string, unknown>): Promise<unknown> {
    switch (method) {
      case 'connect':
        return this.connect(params['token']);
      case 'subscribe':
        return this.subscribe(id, params);
      case 'unsubscribe':
        return this.unsubscribe(params);
      case 'history':
        return this.history(id, params);
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
    // Checked and set before the first await: a second connect in the same frame finds it set.
    if (this.state !== 'connecting' || this.identity || this.connectStarted) throw new TidingsError(ErrorCodes.ALREADY_CONNECTED);
    if (token !== undefined && typeof token !== 'string') throw new TidingsError(ErrorCodes.BAD_REQUEST, 'token must be a string');
    this.connectStarted = true;
    let identity: Identity;
    try {
      identity = await this.ctx.auth.authenticate(token, this.request);
    } catch (err) {
      this.request = null;
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
    // Only the connect reads the request (an auth_native identity keeps what its checks need): not kept for the connection's life.
    this.request = null;
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
    // Expiry is checked by the once-a-second sweep (tick): a timer per connection cost ~160 bytes each.
    if (identity.expires !== null && identity.expires * 1000 <= Date.now()) {
      setImmediate(() => this.close(CloseCodes.TOKEN_EXPIRED));
    }
    this.ctx.onConnected(this);
    this.debug({ user: identity.user, anonymous: identity.user === null, expires: identity.expires }, 'connected');
    const c = this.ctx.config;
    return {
      client: this.id,
      user: identity.user,
      ping: c.ping_interval,
      idle_timeout: c.idle_timeout,
      expires: identity.expires,
      node: this.ctx.edgeId,
      max_inflight: c.client_max_inflight,
    };
  }

  private channelParam(params: Record<string, unknown>): string {
    return this.channelValue(params['channel']);
  }

  private channelValue(channel: unknown): string {
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

  private async unsubscribe(params: Record<string, unknown>): Promise<unknown> {
    const channel = this.channelParam(params);
    if (!this.subscriptions.has(channel)) throw new TidingsError(ErrorCodes.NOT_SUBSCRIBED, channel);
    this.subscriptions.delete(channel);
    // A recovery still replaying stops, and live pushes held for the subscribe reply go.
    this.recovering?.delete(channel);
    this.held.release(channel, Infinity);
    // The reply waits until the director has applied the leave (presence order, see EdgeContext).
    await this.ctx.unsubscribe(this, channel);
    return {};
  }

  /**
   * A publish, the busiest command, checked and sent to the director; its
   * outcome goes to `to` (refusals a microtask later). Answered as run()'s
   * commands are but without its async frames, and without promises when no
   * identity check waits: the command client answers a PublishReply (the
   * edge's allocations per message are most of its GC).
   */
  private publishTo(params: Record<string, unknown> | PublishLine, to: ReplyTarget): void {
    const named = params instanceof PublishLine ? params.channel : params['channel'];
    let channel: string;
    if (named === this.publishGranted && typeof named === 'string') channel = named;
    else {
      const granted = this.grantPublish(named);
      if (granted instanceof Error) {
        refuseLater(to, granted);
        return;
      }
      channel = granted;
    }
    if (this.identity!.check) {
      this.publishAfterCheck(channel, params, to);
      return;
    }
    this.publishChecked(channel, params, to);
  }

  /**
   * The channel of a publish to a channel other than the last one granted: valid and
   * granted (then remembered), or the error to refuse it with.
   */
  private grantPublish(named: unknown): string | Error {
    try {
      const channel = this.channelValue(named);
      if (!grantsAllow(this.identity!.publish, channel)) {
        throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not publish to ${channel}`);
      }
      this.publishGranted = channel;
      return channel;
    } catch (err) {
      return err as Error;
    }
  }

  /**
   * A publish of an identity with its own check (auth_native): sent once the check passes.
   * Apart from publishTo because its closures would make publishTo allocate a context per
   * call (V8 allocates captured variables on entry, whether or not a closure is made).
   */
  private publishAfterCheck(channel: string, params: Record<string, unknown> | PublishLine, to: ReplyTarget): void {
    this.identity!.check!('publish', channel).then(
      () => this.publishChecked(channel, params, to),
      (err: unknown) => to.reject(err as Error),
    );
  }

  /**
   * A publish's result as the director's JSON text, body[start..end): for a
   * JSON client written around it into one frame, {"id":N,"result":<text>}.
   * Never throws.
   */
  answerPublishJson(id: number, body: Buffer, start: number, end: number): void {
    if (this.format !== 'json' || this.state === 'closed') {
      this.answerPublish(id, true, new RawJson(body.subarray(start, end)));
      return;
    }
    try {
      this.commandDone();
      // Merged with this turn's other replies into one frame of lines (ReplyLines), unless something was queued after them.
      const bytes = replyLineBytes(id, end - start);
      const last = this.outbox.lastQueued();
      if (last instanceof ReplyLines && last.fits(bytes)) {
        if (this.outbox.grow(frameHeaderBytes(bytes) + bytes)) {
          last.add(id, body, start, end, bytes);
          this.repliesInItem++;
        }
        return;
      }
      // Made ready for as many replies as the last item held (a publisher's turns are alike).
      const lines = new ReplyLines(this.repliesInItem);
      this.repliesInItem = 1;
      lines.add(id, body, start, end, bytes);
      this.outbox.push(lines);
    } catch (err) {
      this.failed(err);
    }
  }

  /** A publish's outcome (PublishReply): the reply written, the in-flight count lowered. Never throws. */
  answerPublish(id: number, ok: boolean, value: unknown): void {
    try {
      this.commandDone();
      if (ok) this.reply(id, value);
      else this.replyError(id, value);
    } catch (err) {
      this.failed(err);
    }
  }

  /**
   * The data checked and sent to the director; its outcome goes to `to` (refusals a microtask
   * later, by refuseLater: no closure here, so no context allocated per publish).
   */
  private publishChecked(channel: string, params: Record<string, unknown> | PublishLine, to: ReplyTarget): void {
    if (params instanceof PublishLine) {
      // Read in place: its data is JSON within the depth limit (readPublishLine), sent as the client's bytes.
      if (this.identity === null) {
        refuseLater(to, new TidingsError(ErrorCodes.UNAVAILABLE, 'connection closed'));
        return;
      }
      this.ctx.commands.publishBytesTo(channel, params.frame!, params.dataStart, params.dataEnd, this.identity.user, params.noHistory, to);
      // Copied into the publish batch (or held by the command client): the line no longer keeps the client's frame
      // alive while its reply is awaited (the frame would outlive the young generation and cost a full collection).
      params.frame = null;
      return;
    }
    const dataJson = publishDataJson(params);
    if (dataJson instanceof Error) {
      refuseLater(to, dataJson);
      return;
    }
    if (this.identity === null) {
      refuseLater(to, new TidingsError(ErrorCodes.UNAVAILABLE, 'connection closed'));
      return;
    }
    this.ctx.commands.publishTextTo(channel, dataJson, this.identity.user, params['no_history'] === true, to);
  }

  /**
   * One page of history (see history-reader.ts): refused with 136 when the
   * connection's allowance is used up, fetched once the send buffer has room
   * (in steps: readInSteps), and written as the director sent it (the pushes are not parsed for JSON
   * clients). `more: true` says the page stopped at its byte bound: ask again
   * from the last message's offset.
   */
  private async history(id: number, params: Record<string, unknown>): Promise<unknown> {
    const channel = this.channelParam(params);
    if (!grantsAllow(this.identity!.history, channel)) {
      throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not read the history of ${channel}`);
    }
    const query = historyQuery(channel, params) as { channel: string; limit: number; since?: number; epoch?: string };
    const allowance = this.allowance;
    if (allowance.available(Date.now()) <= 0) throw this.historyLimit();
    const timeoutMs = this.ctx.config.command_timeout * 1000;
    return this.inHistoryLane(async () => {
      if (!(await this.whenBelow(this.pageBytes, timeoutMs))) {
        throw new TidingsError(this.isClosed() ? ErrorCodes.UNAVAILABLE : ErrorCodes.TIMEOUT, 'the send buffer did not drain in time for a history page');
      }
      const room = Math.floor(allowance.available(Date.now()));
      if (room <= 0) throw this.historyLimit();
      const page = await readInSteps(this.ctx.history, this, query, Math.max(1, Math.min(this.pageBytes, room)), () => !this.isClosed());
      if (!page) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'connection closed');
      allowance.take(page.bytes, Date.now());
      this.sendHistoryReply(id, page);
      return REPLIED;
    });
  }

  private historyLimit(): TidingsError {
    this.ctx.metrics.limited.inc({ code: '136' });
    const wait = this.allowance.waitMs(this.pageBytes, Date.now()) / 1000;
    const c = this.ctx.config;
    return new TidingsError(ErrorCodes.HISTORY_LIMIT, `${c.client_history_bytes} bytes per ${c.client_history_window} s; retry in ${wait.toFixed(1)} s`, Math.ceil(wait * 10) / 10);
  }

  private sendHistoryReply(id: number, page: Page): void {
    if (this.state === 'closed') return;
    const m = page.meta;
    const head = { channel: m.channel, epoch: m.epoch, offset: m.offset, complete: m.complete, more: m.more };
    if (this.format !== 'json') {
      // Through reply(): a page holding a value MessagePack cannot carry is answered with an error and counted.
      this.reply(id, { ...head, messages: page.pushes.map((p) => JSON.parse(p.toString('utf8')) as unknown) });
      return;
    }
    // {"id":..,"result":{..head,"messages":[push,push,...]}}: the pushes spliced in as they came.
    const open = JSON.stringify({ id, result: head });
    const parts: Buffer[] = [Buffer.from(`${open.slice(0, -2)},"messages":[`)];
    page.pushes.forEach((p, i) => {
      if (i > 0) parts.push(COMMA);
      parts.push(p);
    });
    parts.push(CLOSE_MESSAGES);
    this.outbox.push(textFrame(Buffer.concat(parts)));
  }

  /** Heartbeat bookkeeping, called by the edge's sweep once a second. */
  tick(now: number, pingFrame: { json: Buffer; msgpack: () => Buffer }): void {
    const c = this.ctx.config;
    if (this.state === 'connecting') {
      if (now - this.openedAt > c.connect_timeout * 1000) this.close(CloseCodes.CONNECT_TIMEOUT);
      return;
    }
    if (this.state !== 'connected') return;
    const expires = this.identity?.expires ?? null;
    if (expires !== null && now >= expires * 1000) {
      this.close(CloseCodes.TOKEN_EXPIRED);
      return;
    }
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

/** Refuse a publish a microtask later, as a rejected promise's reactions run. */
function refuseLater(to: ReplyTarget, err: Error): void {
  queueMicrotask(() => to.reject(err));
}

/**
 * A parsed publish's data as JSON text (the sender is the token's user, never anything the
 * client says): parsed once with the client's frame, it goes to the director as text, which
 * it takes as it is; its reply comes back as JSON text, handed to the client unparsed. The
 * error to refuse it with when it has no data, or data too deep or not JSON.
 */
function publishDataJson(params: Record<string, unknown>): string | Error {
  try {
    if (!('data' in params)) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'data is required');
    checkValueDepth(params['data']);
    const dataJson = JSON.stringify(params['data']);
    if (dataJson === undefined) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'data must be a JSON value');
    return dataJson;
  } catch (err) {
    return err as Error;
  }
}

/**
 * Where the command client settles a publish (no promise per message): the
 * connection answers its client, a JSON client with its reply written
 * around the director's outcome bytes.
 */
class PublishReply implements ReplyTarget {
  constructor(
    private readonly conn: ClientConnection,
    readonly id: number,
  ) {}

  resolve(value: unknown): void {
    this.conn.answerPublish(this.id, true, value);
  }

  resolveJson(body: Buffer, start: number, end: number): void {
    this.conn.answerPublishJson(this.id, body, start, end);
  }

  reject(err: Error): void {
    this.conn.answerPublish(this.id, false, err);
  }
}

/**
 * A publish command read in place (readPublishLine): its data is
 * frame[dataStart..dataEnd); it is also where the command client settles it.
 * A class of its own rather than derived from PublishReply: V8 builds a derived
 * class' instances through its generic construct stub, and one is made per
 * publish (issue 17).
 */
class PublishLine implements ReplyTarget {
  constructor(
    private readonly conn: ClientConnection,
    readonly id: number,
    readonly channel: string,
    /** Null once the data is handed to the command client. */
    public frame: Uint8Array | null,
    readonly dataStart: number,
    readonly dataEnd: number,
    readonly noHistory: boolean,
  ) {}

  resolve(value: unknown): void {
    this.conn.answerPublish(this.id, true, value);
  }

  resolveJson(body: Buffer, start: number, end: number): void {
    this.conn.answerPublishJson(this.id, body, start, end);
  }

  reject(err: Error): void {
    this.conn.answerPublish(this.id, false, err);
  }
}
