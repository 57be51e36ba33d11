/**
 * TidingsClient: one logical connection to a Tidings cluster over a list of
 * edge URLs. Owns the connection state machine (disconnected -> connecting ->
 * connected), reconnects with Autobahn-style backoff moving to the next URL
 * after every failure, asks the token supplier for a token on every attempt,
 * watches for server pings, answers them, and resubscribes its subscriptions
 * with recovery. Imports only src/protocol: it runs in browsers and in Node.
 */
import { CloseCodes, ErrorCodes, type ErrorBody } from '../protocol/errors.js';
import { SUBPROTOCOL_JSON, type ConnectResult, type DirectPush, type MessagePush, type PublishResult } from '../protocol/messages.js';
import { DEFAULT_RETRY, checkRetryOptions, mayRetry, retryDelay, type RetryOptions } from './backoff.js';
import { Emitter } from './emitter.js';
import { splitJsonFrame } from './frames.js';
import { RequestError } from './errors.js';
import { ClientReasons, reasonFromClose, reasonFromError, type Reason } from './reasons.js';
import { Subscription, type SubscriptionHost } from './subscription.js';
import { HTTP_TRANSPORTS, fallbackUrl, resolveFallback, type FallbackOption } from './fallback.js';
import type {
  ClientEvents,
  ClientOptions,
  ConnectedEvent,
  ConnectionState,
  HistoryOptions,
  HistoryResult,
  JoinEvent,
  LeaveEvent,
  PresenceResult,
  PresenceStats,
  TokenSupplier,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';

/** Called with the reply synchronously, as it is read: replies and the pushes after them keep their order. */
type ReplyCallback = (err: RequestError | null, result?: unknown) => void;

interface Pending {
  done: ReplyCallback;
  timer: ReturnType<typeof setTimeout>;
}

/** A call waiting for room in the server's in-flight window. */
interface Queued extends Pending {
  id: number;
  frame: string;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;
const noop = (): void => undefined;

/** Connect errors after which retrying with the same supplier cannot help. */
const FATAL_CONNECT_ERRORS = new Set<number>([ErrorCodes.TOKEN_INVALID.code, ErrorCodes.BAD_REQUEST.code]);

/**
 * Most subscribes sent right behind connect, before its reply (the server
 * holds at most 64 commands pipelined behind connect); the others follow
 * connect's reply as before.
 */
const PIPELINED_SUBSCRIBES = 32;

export class TidingsClient extends Emitter<ClientEvents> implements SubscriptionHost {
  state: ConnectionState = 'disconnected';
  /** The connect reply of the current session, or null. */
  info: ConnectedEvent | null = null;
  readonly urls: readonly string[];
  private readonly retry: RetryOptions;
  private readonly WS: WebSocketConstructor;
  private readonly getToken: TokenSupplier;
  private readonly timeoutMs: number;
  private readonly pingMarginMs: number;
  private readonly maxPendingCalls: number;
  private readonly fallback: FallbackOption;
  private readonly fallbackAfter: number;
  private readonly fallbackTransports: readonly string[];
  /** Websocket attempts in a row that closed before opening. */
  private blockedAttempts = 0;
  /** The next attempt tries the HTTP fallback on the same URL (a websocket attempt failed before opening). */
  private probeFallback = false;
  /** Set once a fallback session opened where websockets had failed: every later attempt uses it. */
  private useFallback = false;
  /** The current attempt's transport kind and whether it opened. */
  private attemptKind: 'websocket' | 'sockjs' | null = null;
  private attemptOpened = false;

  private ws: WebSocketLike | null = null;
  /** Bumped for every transport; callbacks of an older one are ignored. */
  private session = 0;
  private urlIndex = 0;
  /** Failed attempts since the last connected session. */
  private failures = 0;
  private nextId = 1;
  /** While connect is being sent: the frames to send with it, as one frame ("\n" between them). */
  private corked: string[] | null = null;
  /** The server's in-flight window as the last connect reply gave it: how many subscribes may go behind connect. */
  private lastWindow = Infinity;
  private readonly pending = new Map<number, Pending>();
  /** Calls beyond the server's `max_inflight`, sent as replies come back (in order). */
  private readonly queued = new Map<number, Queued>();
  /** The server's in-flight limit of this session (from the connect reply). */
  private window = Infinity;
  private readonly waiters = new Set<Waiter>();
  private readonly subs = new Map<string, Subscription>();
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private handshakeTimer: ReturnType<typeof setTimeout> | null = null;
  private watchdogTimer: ReturnType<typeof setTimeout> | null = null;
  private lastFrameAt = 0;
  private silenceLimitMs = 0;

  constructor(options: ClientOptions) {
    super();
    if (!Array.isArray(options.urls) || options.urls.length === 0) throw new TypeError('urls must list at least one websocket URL');
    this.urls = [...options.urls];
    const retry: RetryOptions = {
      maxRetries: options.maxRetries ?? DEFAULT_RETRY.maxRetries,
      initialRetryDelay: options.initialRetryDelay ?? DEFAULT_RETRY.initialRetryDelay,
      maxRetryDelay: options.maxRetryDelay ?? DEFAULT_RETRY.maxRetryDelay,
      retryDelayGrowth: options.retryDelayGrowth ?? DEFAULT_RETRY.retryDelayGrowth,
      retryDelayJitter: options.retryDelayJitter ?? DEFAULT_RETRY.retryDelayJitter,
    };
    checkRetryOptions(retry);
    this.retry = retry;
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError('no WebSocket class: pass options.WebSocket (in Node: the default export of "ws")');
    this.WS = WS;
    this.getToken = options.getToken ?? (() => null);
    this.timeoutMs = (options.timeout ?? 10) * 1000;
    this.pingMarginMs = (options.pingMargin ?? 5) * 1000;
    this.maxPendingCalls = options.maxPendingCalls ?? 1000;
    this.fallback = options.fallback ?? false;
    this.fallbackAfter = options.fallbackAfter ?? 1;
    if (!Number.isInteger(this.fallbackAfter) || this.fallbackAfter < 1) throw new TypeError('fallbackAfter must be an integer >= 1');
    this.fallbackTransports = options.fallbackTransports ?? HTTP_TRANSPORTS;
  }

  /** The transport of the current or last session: 'websocket', or 'sockjs' after falling back. */
  get transport(): 'websocket' | 'sockjs' {
    return this.useFallback ? 'sockjs' : 'websocket';
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** The URL of the current or last attempt. */
  get url(): string {
    return this.urls[this.urlIndex % this.urls.length]!;
  }

  // --- connection -------------------------------------------------------------

  /** Start connecting (no-op unless disconnected). Listen to 'state' or await ready(). */
  connect(): void {
    if (this.state !== 'disconnected') return;
    this.failures = 0;
    this.attempt(ClientReasons.CONNECT_CALLED);
  }

  /** Close the connection and stop reconnecting; subscriptions resume on the next connect(). */
  disconnect(): void {
    if (this.state === 'disconnected') return;
    this.session++;
    this.clearRetry();
    this.teardown(CloseCodes.NORMAL.code);
    this.goDisconnected(ClientReasons.DISCONNECT_CALLED);
  }

  /** Resolves when connected; rejects on a final disconnect or after `timeoutSec`. */
  ready(timeoutSec = this.timeoutMs / 1000): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.state === 'disconnected') return Promise.reject(RequestError.of(ErrorCodes.UNAVAILABLE, 'not connected: call connect()'));
    if (this.waiters.size >= this.maxPendingCalls) return Promise.reject(RequestError.of(ErrorCodes.LIMIT_EXCEEDED, 'too many calls waiting for a connection'));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w);
          reject(RequestError.of(ErrorCodes.TIMEOUT, `not connected within ${timeoutSec} s`));
        }, timeoutSec * 1000),
      };
      this.waiters.add(w);
    });
  }

  private attempt(reason: Reason): void {
    const s = ++this.session;
    const url = this.url;
    this.setState('connecting', reason);
    this.emit('connecting', { url, attempt: this.failures });
    this.handshakeTimer = setTimeout(() => this.fail(s, ClientReasons.CONNECT_TIMEOUT), this.timeoutMs);
    Promise.resolve()
      .then(() => this.getToken())
      .then(
        (token) => {
          if (s === this.session) this.open(s, url, token ?? null);
        },
        (err: unknown) => {
          if (s !== this.session) return;
          this.emit('error', { error: err instanceof Error ? err : new Error(String(err)) });
          this.fail(s, ClientReasons.TOKEN_ERROR);
        },
      );
  }

  private open(s: number, url: string, token: string | null): void {
    this.attemptOpened = false;
    if (this.useFallback || this.probeFallback) {
      this.attemptKind = 'sockjs';
      const sockjsUrl = fallbackUrl(url);
      resolveFallback(this.fallback, sockjsUrl).then(
        (SockJS) => {
          if (s === this.session) this.wire(s, url, token, () => new SockJS(sockjsUrl, undefined, { transports: [...this.fallbackTransports] }));
        },
        (err: unknown) => {
          if (s !== this.session) return;
          this.emit('error', { error: err instanceof Error ? err : new Error(String(err)) });
          this.fail(s, ClientReasons.ABNORMAL);
        },
      );
      return;
    }
    this.attemptKind = 'websocket';
    this.wire(s, url, token, () => new this.WS(url, [SUBPROTOCOL_JSON]));
  }

  private wire(s: number, url: string, token: string | null, make: () => WebSocketLike): void {
    let ws: WebSocketLike;
    try {
      ws = make();
    } catch (err) {
      this.emit('error', { error: err instanceof Error ? err : new Error(String(err)) });
      this.fail(s, ClientReasons.ABNORMAL);
      return;
    }
    this.ws = ws;
    ws.onerror = noop; // a close event always follows
    ws.onopen = () => {
      if (s !== this.session) return;
      this.attemptOpened = true;
      // The same edge answers over HTTP where its websocket failed: websockets are blocked on this network.
      if (this.attemptKind === 'sockjs') this.useFallback = true;
      this.lastFrameAt = Date.now();
      // Over a websocket, connect and the first subscribes leave as one frame (see Subscription.onOpened).
      const pipelining = this.attemptKind === 'websocket';
      if (pipelining) this.corked = [];
      this.command('connect', token ? { token } : {}, this.timeoutMs, (err, r) => {
        if (s !== this.session) return;
        if (err) this.fail(s, reasonFromError({ code: err.code, name: err.errorName, message: err.message }, !FATAL_CONNECT_ERRORS.has(err.code)));
        else this.onConnectReply(s, url, r as ConnectResult);
      });
      if (pipelining) {
        let room = Math.min(PIPELINED_SUBSCRIBES, this.lastWindow - 1);
        for (const sub of this.subs.values()) {
          if (room <= 0) break;
          if (!sub.isWanted) continue;
          sub.onOpened(s);
          room--;
        }
        const frames = this.corked!;
        this.corked = null;
        if (frames.length > 0 && s === this.session) ws.send(frames.join('\n'));
      }
    };
    ws.onmessage = (ev: { data: unknown }) => {
      if (s === this.session) this.onFrame(s, ev.data);
    };
    ws.onclose = (ev: { code: number; reason: string }) => {
      if (s === this.session) this.fail(s, reasonFromClose(ev.code, String(ev.reason ?? '')));
    };
  }

  private onConnectReply(s: number, url: string, r: ConnectResult): void {
    if (s !== this.session) return;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.failures = 0;
    this.info = { ...r, url, transport: this.transport };
    this.window = typeof r.max_inflight === 'number' && r.max_inflight > 0 ? r.max_inflight : Infinity;
    this.lastWindow = this.window;
    this.armWatchdog(s, r.ping);
    this.setState('connected', ClientReasons.CONNECTED);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve();
    }
    this.waiters.clear();
    this.emit('connected', this.info);
    for (const sub of this.subs.values()) sub.onConnected(s);
  }

  /** The transport of session `s` failed or closed: reconnect or stop, as `reason` says. */
  private fail(s: number, reason: Reason): void {
    if (s !== this.session) return;
    this.session++;
    const fellBack = this.noteBlocked();
    const wasConnected = this.state === 'connected';
    this.teardown(CloseCodes.NORMAL.code);
    if (wasConnected) this.failures = 0;
    if (!reason.reconnect) {
      this.goDisconnected(reason);
      return;
    }
    if (!mayRetry(this.failures, this.retry)) {
      this.goDisconnected(ClientReasons.MAX_RETRIES);
      return;
    }
    let delayMs = 0;
    if (fellBack) {
      // Probe the same URL over HTTP at once: it tells a blocked websocket from a dead edge.
    } else {
      delayMs = retryDelay(this.failures, this.retry) * 1000;
      this.failures++;
      // Fail over: the next attempt goes to the next URL of the list.
      this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    }
    this.setState('connecting', reason);
    this.emit('disconnected', reason);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.attempt(reason);
    }, delayMs);
  }

  /**
   * After a websocket attempt that never opened (fallbackAfter of them in a row),
   * the next attempt probes the fallback on the same URL (returns true then).
   * A probe that fails too means the edge is down, not websockets blocked:
   * back to websockets and the next URL.
   */
  private noteBlocked(): boolean {
    const kind = this.attemptKind;
    this.attemptKind = null;
    if (kind === 'sockjs') {
      if (!this.useFallback) this.probeFallback = false;
      return false;
    }
    if (kind !== 'websocket') return false;
    if (this.attemptOpened) {
      this.blockedAttempts = 0;
      return false;
    }
    if (this.fallback === false || ++this.blockedAttempts < this.fallbackAfter) return false;
    this.blockedAttempts = 0;
    this.probeFallback = true;
    return true;
  }

  private goDisconnected(reason: Reason): void {
    this.setState('disconnected', reason);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(RequestError.of(ErrorCodes.UNAVAILABLE, `disconnected: ${reason.name}`));
    }
    this.waiters.clear();
    this.emit('disconnected', reason);
  }

  /** Drop the current transport, its timers and its in-flight calls. */
  private teardown(code: number): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.watchdogTimer) clearTimeout(this.watchdogTimer);
    this.handshakeTimer = this.watchdogTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = noop;
      try {
        ws.close(code);
      } catch {
        // already closed
      }
    }
    // Subscriptions first: their in-flight subscribes then count as stale, not failed.
    if (this.info) {
      this.info = null;
      for (const sub of this.subs.values()) sub.onDisconnected();
    }
    const pending = [...this.pending.values(), ...this.queued.values()];
    this.pending.clear();
    this.queued.clear();
    this.window = Infinity;
    for (const p of pending) {
      clearTimeout(p.timer);
      p.done(RequestError.of(ErrorCodes.UNAVAILABLE, 'connection lost'));
    }
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private setState(state: ConnectionState, reason: Reason): void {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit('state', { state, previous, reason });
  }

  // --- watchdog ---------------------------------------------------------------

  /** Reconnect when nothing (not even a ping) arrives for ping + pingMargin seconds. */
  private armWatchdog(s: number, pingSec: number): void {
    // A server that announces no ping interval is not watched.
    if (typeof pingSec !== 'number' || !(pingSec > 0)) return;
    this.silenceLimitMs = pingSec * 1000 + this.pingMarginMs;
    const check = (): void => {
      if (s !== this.session) return;
      const silent = Date.now() - this.lastFrameAt;
      if (silent >= this.silenceLimitMs) {
        this.fail(s, ClientReasons.NO_PING);
        return;
      }
      this.watchdogTimer = setTimeout(check, this.silenceLimitMs - silent);
    };
    this.watchdogTimer = setTimeout(check, this.silenceLimitMs);
  }

  // --- frames -----------------------------------------------------------------

  private onFrame(s: number, data: unknown): void {
    this.lastFrameAt = Date.now();
    let items: unknown[];
    try {
      items = splitJsonFrame(data);
    } catch {
      this.fail(s, ClientReasons.PROTOCOL_ERROR);
      return;
    }
    for (const item of items) {
      if (s !== this.session) return;
      if (typeof item === 'object' && item !== null) this.onItem(item as Record<string, unknown>);
    }
  }

  private onItem(m: Record<string, unknown>): void {
    if (typeof m['id'] === 'number') {
      const p = this.pending.get(m['id']);
      if (!p) return;
      this.pending.delete(m['id']);
      clearTimeout(p.timer);
      this.sendQueued();
      if (m['error']) p.done(new RequestError(m['error'] as ErrorBody));
      else p.done(null, m['result']);
      return;
    }
    switch (m['type']) {
      case 'message': {
        const msg = m as unknown as MessagePush;
        const sub = this.subs.get(msg.channel);
        // Channels subscribed server-side (the server API) have no Subscription object.
        if (!sub || sub.handleMessage(msg)) this.emit('message', msg);
        return;
      }
      case 'subscribed':
      case 'unsubscribed': {
        // Pushed when the server API (un)subscribes this connection.
        if (typeof m['channel'] === 'string') this.emit('serverSubscription', { channel: m['channel'], subscribed: m['type'] === 'subscribed' });
        return;
      }
      case 'ping':
        this.ws?.send('{"type":"pong"}');
        return;
      case 'direct':
        this.emit('direct', m as unknown as DirectPush);
        return;
      case 'join':
      case 'leave': {
        const e = m as unknown as JoinEvent | LeaveEvent;
        this.subs.get(e.channel)?.handlePresence(e);
        if (e.type === 'join') this.emit('join', e);
        else this.emit('leave', e);
        return;
      }
      case 'error': {
        const body = m['error'] as ErrorBody | undefined;
        if (body) this.emit('error', { error: new RequestError(body) });
        return;
      }
      default:
        // Other pushes (user state changes, later protocol versions) are passed on as they are.
        if (typeof m['type'] === 'string') this.emit('push', m as { type: string });
        return;
    }
  }

  // --- commands -----------------------------------------------------------------

  /** Send on the current connection; SubscriptionHost. `done` runs as the reply is read. */
  send(method: string, params: Record<string, unknown>, done: ReplyCallback): void {
    this.command(method, params, this.timeoutMs, done);
  }

  /**
   * Send a call, or queue it while the server's in-flight window
   * (`max_inflight`) is full: the server would refuse it with 135.
   */
  private command(method: string, params: Record<string, unknown>, timeoutMs: number, done: ReplyCallback): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return done(RequestError.of(ErrorCodes.UNAVAILABLE, 'not connected'));
    if (this.pending.size + this.queued.size >= this.maxPendingCalls) return done(RequestError.of(ErrorCodes.LIMIT_EXCEEDED, 'too many calls in flight'));
    const id = this.nextId++;
    const timer = setTimeout(() => {
      this.pending.delete(id);
      this.queued.delete(id);
      this.sendQueued();
      done(RequestError.of(ErrorCodes.TIMEOUT, `no reply to ${method} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const frame = JSON.stringify({ id, method, params });
    if (this.pending.size >= this.window) {
      this.queued.set(id, { id, frame, done, timer });
      return;
    }
    this.pending.set(id, { done, timer });
    if (this.corked) this.corked.push(frame);
    else ws.send(frame);
  }

  /** Send queued calls while the window has room. */
  private sendQueued(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    for (const q of this.queued.values()) {
      if (this.pending.size >= this.window) return;
      this.queued.delete(q.id);
      this.pending.set(q.id, { done: q.done, timer: q.timer });
      ws.send(q.frame);
    }
  }

  private sendCommand<T>(method: string, params: Record<string, unknown>, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => this.command(method, params, timeoutMs, (err, r) => (err ? reject(err) : resolve(r as T))));
  }

  /**
   * Call a method once connected, waiting for the connection if it is being
   * (re)established; rejects with RequestError (timeout 114 after `timeoutSec`).
   */
  async call<T = unknown>(method: string, params: Record<string, unknown> = {}, timeoutSec = this.timeoutMs / 1000): Promise<T> {
    const deadline = Date.now() + timeoutSec * 1000;
    if (this.state !== 'connected') await this.ready(timeoutSec);
    return this.sendCommand<T>(method, params, Math.max(1, deadline - Date.now()));
  }

  publish(channel: string, data: unknown, opts: { timeout?: number; noHistory?: boolean } = {}): Promise<PublishResult> {
    const params: Record<string, unknown> = { channel, data };
    if (opts.noHistory) params['no_history'] = true;
    return this.call<PublishResult>('publish', params, opts.timeout);
  }

  presence(channel: string, opts: { timeout?: number } = {}): Promise<PresenceResult> {
    return this.call<PresenceResult>('presence', { channel }, opts.timeout);
  }

  presenceStats(channel: string, opts: { timeout?: number } = {}): Promise<PresenceStats> {
    return this.call<PresenceStats>('presence_stats', { channel }, opts.timeout);
  }

  /**
   * Up to `limit` (default 100) messages of the channel's history, oldest
   * first: the newest ones, or those after `since`. The server answers in pages
   * of bounded size (`more: true`); this asks for the following pages until
   * the limit is reached, and when the connection's history allowance is used
   * up (136 history_limit) waits the `retry_after` the server gives (at most
   * `timeout` in all), so the caller sees one result. `timeout` applies to
   * each page.
   */
  async history(channel: string, opts: HistoryOptions & { timeout?: number } = {}): Promise<HistoryResult> {
    const limit = opts.limit ?? 100;
    const messages: MessagePush[] = [];
    let since = opts.since;
    let first: HistoryResult | null = null;
    let waited = 0;
    for (;;) {
      const params: Record<string, unknown> = { channel, limit: limit - messages.length };
      if (since) params['since'] = since;
      let r: HistoryResult;
      try {
        r = await this.call<HistoryResult>('history', params, opts.timeout);
      } catch (err) {
        const retryAfter = err instanceof RequestError && err.code === ErrorCodes.HISTORY_LIMIT.code ? err.retryAfter : undefined;
        // Wait out the allowance: in total at most `timeout`, as long as one page may take.
        const waitMs = retryAfter === undefined ? -1 : Math.max(50, retryAfter * 1000);
        if (waitMs < 0 || waited + waitMs > (opts.timeout ?? this.timeoutMs / 1000) * 1000) throw err;
        waited += waitMs;
        await new Promise((resolve) => setTimeout(resolve, waitMs));
        continue;
      }
      first ??= r;
      messages.push(...r.messages);
      const last = r.messages[r.messages.length - 1];
      if (!r.more || !last || messages.length >= limit) return { ...r, complete: first.complete, more: false, messages };
      since = { offset: last.offset, epoch: last.epoch };
    }
  }

  // --- subscriptions ----------------------------------------------------------------

  /** The subscription of `channel`, created and started if there is none. */
  subscribe(channel: string): Subscription {
    let sub = this.subs.get(channel);
    if (!sub) {
      sub = new Subscription(channel, this);
      this.subs.set(channel, sub);
    }
    sub.subscribe();
    return sub;
  }

  getSubscription(channel: string): Subscription | undefined {
    return this.subs.get(channel);
  }

  subscriptions(): Subscription[] {
    return [...this.subs.values()];
  }

  removeSubscription(sub: Subscription): void {
    if (this.subs.get(sub.channel) === sub) this.subs.delete(sub.channel);
  }

  reportError(error: Error, channel: string): void {
    this.emit('error', { error, channel });
  }
}
