/**
 * One WAMP session on an edge: the handshake (HELLO, ticket CHALLENGE /
 * AUTHENTICATE, WELCOME or ABORT, GOODBYE), then the broker (a topic is a
 * Tidings channel: SUBSCRIBE joins the edge's hub like any subscriber,
 * PUBLISH goes to the director like any publish) and the dealer's client
 * side (REGISTER / CALL go to the director's registry; INVOCATIONs come down
 * as control messages and YIELD / ERROR go back up). Protocol violations end
 * the session with ABORT wamp.error.protocol_violation and close 4035.
 */
import type { WebSocket } from 'ws';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { CloseCodes, ErrorCodes, TidingsError, type CloseSpec } from '../protocol/errors.js';
import { channelProblem, grantsAllow } from '../protocol/names.js';
import { checkValueDepth } from '../protocol/payload.js';
import type { Identity } from '../auth/authenticator.js';
import { Outbox, closeGraceMs } from '../edge/outbox.js';
import { binaryFrame, textFrame, type SharedPush } from '../edge/frames.js';
import type { Listener } from '../edge/hub.js';
import type { TrackedConnection } from '../edge/state-link.js';
import { decodeMessage, encodeMessage } from './codec.js';
import { errorParts, WampError } from './error-map.js';
import { publicationId, randomId } from './ids.js';
import { dataFromPublish } from './payload-map.js';
import { Msg, ProtocolViolation, Uri, isDict, messageName, isReservedUri, parseClientMessage, uriProblem, type ClientMessage, type Dict, type Serializer } from './messages.js';
import type { WampEdge } from './edge.js';
import { SessionDealer } from './session-dealer.js';
import { EventGate } from './event-gate.js';

type State = 'hello' | 'challenging' | 'established' | 'closing' | 'closed';

/** Per-session bounds of the broker side (documented in docs/wamp.md; the dealer's are in session-dealer.ts). */
export const SESSION_LIMITS = Object.freeze({
  /** Acknowledged or not, PUBLISHes waiting for the director. */
  publishes: 1000,
});

/** What the router announces in WELCOME. */
const ROUTER_ROLES = Object.freeze({
  broker: { features: { publisher_identification: true, publisher_exclusion: true } },
  dealer: { features: { caller_identification: true, call_timeout: true, call_canceling: true } },
});

export class WampSession implements Listener, TrackedConnection {
  readonly sessionId = randomId();
  /** Connection id in presence and debug views. */
  readonly id: string;
  state: State = 'hello';
  identity: Identity | null = null;
  readonly openedAt = Date.now();
  lastSeen = Date.now();
  private lastPing = Date.now();
  private readonly outbox: Outbox;
  private clientRoles: Dict = {};
  /** channel -> subscription ID (the edge's ID for the channel). */
  private readonly channelSubs = new Map<string, number>();
  private readonly subChannels = new Map<number, string>();
  private readonly joining = new Map<string, Promise<number>>();
  /** Holds events until SUBSCRIBED is sent and skips the session's own publications (exclude_me). */
  private readonly gate = new EventGate();
  private publishing = 0;
  /** REGISTER, CALL and the callee's side. */
  readonly dealer = new SessionDealer(this);
  private attached = false;
  private expiryTimer: NodeJS.Timeout | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  private closingCode: CloseSpec = CloseCodes.NORMAL;

  constructor(
    private readonly ws: WebSocket,
    socket: Socket,
    readonly serializer: Serializer,
    readonly wamp: WampEdge,
    readonly log: Logger,
  ) {
    this.id = `${wamp.edge.edgeId}.w${this.sessionId}`;
    this.outbox = new Outbox(socket, wamp.config.client_send_buffer, this, wamp.edge.scheduler);
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onFrame(data, isBinary));
    ws.on('pong', () => (this.lastSeen = Date.now()));
    ws.on('close', () => this.cleanup());
    ws.on('error', (err) => log.debug({ err: err.message }, 'websocket error'));
  }

  get user(): string | null {
    return this.identity?.user ?? null;
  }

  /** Whether the client announced an advanced feature for a role. */
  clientHas(role: string, feature: string): boolean {
    const r = this.clientRoles[role];
    return isDict(r) && isDict(r['features']) && r['features'][feature] === true;
  }

  // --- output -------------------------------------------------------------

  send(message: unknown[]): void {
    if (this.state === 'closed') return;
    let encoded: string | Uint8Array;
    try {
      encoded = encodeMessage(this.serializer, message);
    } catch (err) {
      this.log.error({ err, type: message[0] }, 'WAMP message could not be encoded');
      return;
    }
    this.outbox.push(typeof encoded === 'string' ? textFrame(Buffer.from(encoded)) : binaryFrame(encoded));
  }

  sendError(requestType: Msg, request: number, err: unknown): void {
    if (!(err instanceof TidingsError) && !(err instanceof WampError)) this.log.error({ err }, 'WAMP request failed');
    const e = errorParts(err);
    this.send([Msg.ERROR, requestType, request, {}, e.uri, e.args, e.kwargs]);
  }

  /** ABORT with a reason, then close (4035). */
  abort(reason: string, message: string): void {
    if (this.state === 'closed') return;
    this.log.info({ reason, message }, 'WAMP session aborted');
    this.wamp.aborts.inc({ reason });
    this.send([Msg.ABORT, { message }, reason]);
    this.close(CloseCodes.WAMP_ABORTED);
  }

  /** The router ends the session: GOODBYE, then close once the client answers (or after 2 s). */
  goodbye(reason: string, message: string, code: CloseSpec): void {
    if (this.state !== 'established') {
      this.close(code);
      return;
    }
    this.send([Msg.GOODBYE, { message }, reason]);
    this.state = 'closing';
    this.closingCode = code;
    this.closeTimer = setTimeout(() => this.close(code), 2000);
    this.closeTimer.unref();
  }

  close(spec: CloseSpec, detail?: string): void {
    if (this.state === 'closed') return;
    // Everything queued goes before the close frame, whatever the socket holds.
    this.outbox.flushAll();
    this.state = 'closed';
    try {
      this.ws.close(spec.code, detail ? `${spec.reason}: ${detail}`.slice(0, 120) : spec.reason);
    } catch {
      this.ws.terminate();
    }
    setTimeout(() => this.ws.terminate(), closeGraceMs(spec)).unref();
    this.cleanup();
  }

  private cleaned = false;

  private cleanup(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    this.state = 'closed';
    this.outbox.close();
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    if (this.closeTimer) clearTimeout(this.closeTimer);
    for (const channel of [...this.channelSubs.keys()]) this.leave(channel, false);
    for (const channel of this.joining.keys()) this.wamp.edge.hub.leaveChannel(this, channel);
    if (this.attached) this.wamp.link.close(this.id);
    this.wamp.forget(this);
    // The director drops this session's registrations, cancels calls to it and gives up its own calls.
    if (this.dealer.holdsDirectorState) {
      this.wamp.edge.commands.request('wamp_session_closed', { instance: this.wamp.link.instance, session: this.sessionId }).catch((err: Error) => {
        this.log.warn({ err: err.message }, 'director not told of a closed WAMP session; its registrations go with presence');
      });
    }
    this.dealer.clear();
  }

  // --- Listener -----------------------------------------------------------

  deliver(push: SharedPush): void {
    // Only sequenced channel messages are events; presence and state events have no WAMP form.
    if (this.state !== 'established' && this.state !== 'closing') return;
    if (push.channel === null || push.offset === 0) return;
    const verdict = this.gate.offer(push);
    if (verdict === 'overflow') this.onOverflow();
    else if (verdict === 'send') this.emit(push);
  }

  private emit(push: SharedPush): void {
    const sub = this.channelSubs.get(push.channel!);
    if (sub === undefined) return;
    const frame = this.wamp.eventFrame(push, sub, this.serializer);
    if (frame) this.outbox.push(frame);
  }

  onGap(channel: string): void {
    this.close(CloseCodes.MESSAGE_GAP, channel);
  }

  onOverflow(): void {
    this.wamp.edge.metrics.slowConsumers.inc();
    this.log.warn({ pending: this.outbox.pending }, 'slow WAMP session cut off');
    this.outbox.close();
    this.close(CloseCodes.SLOW_CONSUMER);
  }

  private unhold(channel: string): void {
    for (const push of this.gate.unhold(channel)) if (this.state !== 'closed') this.emit(push);
  }

  // --- TrackedConnection (server API on this connection) -----------------

  channels(): Iterable<string> {
    return this.channelSubs.keys();
  }

  subscribeServerSide(channels: readonly string[]): void {
    // WAMP has no message that tells a client it was subscribed by someone else.
    this.log.warn({ channels }, 'server-side subscribe is not available for WAMP sessions');
  }

  unsubscribeServerSide(channels: readonly string[]): void {
    for (const channel of channels) {
      const sub = this.channelSubs.get(channel);
      if (sub === undefined) continue;
      this.leave(channel, true);
      // Subscription revocation (advanced profile) where the client takes it; else it simply stops receiving.
      if (this.clientHas('subscriber', 'subscription_revocation')) this.send([Msg.UNSUBSCRIBED, 0, { subscription: sub, reason: 'tidings.unsubscribed_by_server' }]);
    }
  }

  /** The edge is stopping: no time to wait for the client's GOODBYE. */
  shutdown(): void {
    if (this.state === 'established') this.send([Msg.GOODBYE, { message: 'the node is shutting down' }, Uri.SYSTEM_SHUTDOWN]);
    this.close(CloseCodes.SHUTDOWN);
  }

  disconnect(): void {
    this.goodbye(Uri.KILLED, 'disconnected by the server API', CloseCodes.DISCONNECTED);
  }

  // --- heartbeat ----------------------------------------------------------

  tick(now: number): void {
    const c = this.wamp.config;
    if (this.state === 'hello' || this.state === 'challenging') {
      if (now - this.openedAt > c.connect_timeout * 1000) this.close(CloseCodes.CONNECT_TIMEOUT);
      return;
    }
    if (this.state !== 'established') return;
    if (now - this.lastSeen > c.idle_timeout * 1000) {
      this.close(CloseCodes.IDLE_TIMEOUT);
      return;
    }
    if (now - this.lastPing >= c.ping_interval * 1000) {
      this.lastPing = now;
      try {
        this.ws.ping();
      } catch {
        // closing already
      }
    }
  }

  // --- input --------------------------------------------------------------

  private onFrame(data: Buffer, isBinary: boolean): void {
    this.lastSeen = Date.now();
    if (this.state === 'closed') return;
    let msg: ClientMessage;
    try {
      msg = parseClientMessage(decodeMessage(this.serializer, data, isBinary));
    } catch (err) {
      if (err instanceof ProtocolViolation) this.abort(Uri.PROTOCOL_VIOLATION, err.message);
      else this.abort(Uri.PROTOCOL_VIOLATION, 'malformed message');
      return;
    }
    try {
      this.dispatch(msg);
    } catch (err) {
      if (err instanceof ProtocolViolation) this.abort(Uri.PROTOCOL_VIOLATION, err.message);
      else {
        this.log.error({ err }, 'WAMP message handling failed');
        this.abort(Uri.PROTOCOL_VIOLATION, 'message could not be handled');
      }
    }
  }

  private dispatch(msg: ClientMessage): void {
    if (this.state === 'closing') {
      // Waiting for the client's GOODBYE; everything else is ignored (spec, transition 14).
      if (msg.type === Msg.GOODBYE) this.close(this.closingCode);
      return;
    }
    switch (msg.type) {
      case Msg.HELLO:
        if (this.state !== 'hello') throw new ProtocolViolation('HELLO received after the session was established');
        this.hello(msg.realm, msg.details);
        return;
      case Msg.AUTHENTICATE:
        if (this.state !== 'challenging') throw new ProtocolViolation('AUTHENTICATE received without a CHALLENGE');
        void this.authenticate(msg.signature);
        return;
      case Msg.ABORT:
        this.close(CloseCodes.NORMAL);
        return;
      default:
        break;
    }
    if (this.state !== 'established') throw new ProtocolViolation(`${messageName(msg.type)} received before the session was established`);
    switch (msg.type) {
      case Msg.GOODBYE:
        this.send([Msg.GOODBYE, {}, Uri.GOODBYE_AND_OUT]);
        this.close(CloseCodes.NORMAL);
        return;
      case Msg.PUBLISH:
        void this.publish(msg.request, msg.options, msg.topic, msg.args, msg.kwargs);
        return;
      case Msg.SUBSCRIBE:
        void this.subscribe(msg.request, msg.options, msg.topic);
        return;
      case Msg.UNSUBSCRIBE:
        this.unsubscribe(msg.request, msg.subscription);
        return;
      case Msg.REGISTER:
        void this.dealer.register(msg.request, msg.options, msg.procedure);
        return;
      case Msg.UNREGISTER:
        void this.dealer.unregister(msg.request, msg.registration);
        return;
      case Msg.CALL:
        if (this.dealer.hasCall(msg.request)) throw new ProtocolViolation(`CALL request ${msg.request} is already in flight`);
        void this.dealer.call(msg.request, msg.options, msg.procedure, msg.args, msg.kwargs);
        return;
      case Msg.CANCEL:
        this.dealer.cancel(msg.request);
        return;
      case Msg.YIELD:
        this.dealer.answer(msg.request, undefined, msg.args, msg.kwargs);
        return;
      case Msg.ERROR:
        if (msg.requestType !== Msg.INVOCATION) throw new ProtocolViolation(`ERROR for request type ${msg.requestType}: a client only answers INVOCATION with ERROR`);
        this.dealer.answer(msg.request, msg.error, msg.args, msg.kwargs);
        return;
    }
  }

  // --- session ------------------------------------------------------------

  private hello(realm: string, details: Dict): void {
    const c = this.wamp.config;
    const roles = details['roles'];
    if (!isDict(roles) || !['publisher', 'subscriber', 'caller', 'callee'].some((r) => isDict(roles[r]))) {
      throw new ProtocolViolation('HELLO.Details.roles must announce at least one of publisher, subscriber, caller, callee');
    }
    this.clientRoles = roles;
    if (realm !== c.wamp_realm) {
      this.abort(Uri.NO_SUCH_REALM, `no realm ${JSON.stringify(realm.slice(0, 100))}: this router serves ${c.wamp_realm}`);
      return;
    }
    const offered = details['authmethods'];
    const methods = Array.isArray(offered) ? offered.filter((m): m is string => typeof m === 'string') : ['anonymous'];
    if (methods.includes('ticket')) {
      this.state = 'challenging';
      this.send([Msg.CHALLENGE, 'ticket', {}]);
      return;
    }
    if (methods.includes('anonymous') && c.allow_anonymous) {
      void this.authenticate(undefined);
      return;
    }
    this.abort(Uri.NO_MATCHING_AUTH_METHOD, `this router accepts the ticket method (a Tidings token)${c.allow_anonymous ? ' or anonymous' : ''}; offered: ${methods.join(', ').slice(0, 100) || 'none'}`);
  }

  private async authenticate(ticket: string | undefined): Promise<void> {
    if (ticket === '') {
      this.abort(Uri.AUTHENTICATION_DENIED, 'an empty ticket');
      return;
    }
    let identity: Identity;
    try {
      identity = await this.wamp.edge.auth.authenticate(ticket);
    } catch (err) {
      this.abort(Uri.AUTHENTICATION_DENIED, err instanceof TidingsError ? err.message : 'ticket refused');
      return;
    }
    if (this.state === 'closed') return;
    this.identity = identity;
    this.state = 'established';
    if (identity.expires !== null) {
      const ms = identity.expires * 1000 - Date.now();
      this.expiryTimer = setTimeout(() => this.goodbye(Uri.TOKEN_EXPIRED, 'token expired', CloseCodes.TOKEN_EXPIRED), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
      this.expiryTimer.unref();
    }
    this.wamp.established(this);
    this.wamp.link.attach(this);
    this.attached = true;
    const welcome: Dict = {
      roles: ROUTER_ROLES,
      authrole: identity.user === null ? 'anonymous' : 'user',
      authmethod: ticket === undefined ? 'anonymous' : 'ticket',
      authprovider: 'tidings',
      agent: 'Tidings',
    };
    if (identity.user !== null) welcome['authid'] = identity.user;
    this.send([Msg.WELCOME, this.sessionId, welcome]);
  }

  // --- broker -------------------------------------------------------------

  /** The channel a topic URI names; topics are channel names that are also WAMP URIs. */
  private topicChannel(topic: string): string {
    const problem = uriProblem(topic) ?? channelProblem(topic) ?? (isReservedUri(topic) ? 'the wamp. prefix is reserved' : undefined);
    if (problem) throw new TidingsError(ErrorCodes.WAMP_INVALID_URI, `${topic.slice(0, 100)}: ${problem}`);
    return topic;
  }

  private async publish(request: number, options: Dict, topic: string, args: unknown[] | undefined, kwargs: Dict | undefined): Promise<void> {
    const ack = options['acknowledge'] === true;
    let channel: string | null = null;
    let holding = false;
    try {
      channel = this.topicChannel(topic);
      if (!grantsAllow(this.identity!.publish, channel)) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not publish to ${channel}`);
      const data = dataFromPublish(args, kwargs);
      checkValueDepth(data);
      const size = JSON.stringify(data).length;
      if (size > this.wamp.config.max_message_size) throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${size} bytes > max_message_size ${this.wamp.config.max_message_size}`);
      if (this.publishing >= SESSION_LIMITS.publishes) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${SESSION_LIMITS.publishes} publishes in flight per session`);
      // exclude_me (default true): hold this channel's events until the publication's offset is known, then skip it.
      holding = options['exclude_me'] !== false && (this.channelSubs.has(channel) || this.joining.has(channel));
      if (holding) this.gate.hold(channel);
      this.publishing++;
      let r: { offset: number; epoch: string };
      try {
        // The sender is the token's user, never anything the client says.
        r = await this.wamp.edge.commands.request<{ offset: number; epoch: string }>('publish', { channel, data, sender: this.identity!.user, no_history: false });
      } finally {
        this.publishing--;
      }
      if (holding) this.gate.own(channel, r.offset);
      if (ack) this.send([Msg.PUBLISHED, request, publicationId(channel, r.epoch, r.offset)]);
    } catch (err) {
      // The spec answers a PUBLISH only when it asked for acknowledgement.
      if (ack) this.sendError(Msg.PUBLISH, request, err);
      else this.log.debug({ topic: topic.slice(0, 100), err: (err as Error).message }, 'unacknowledged WAMP publish refused');
    } finally {
      if (holding && channel !== null) this.unhold(channel);
    }
  }

  private async subscribe(request: number, options: Dict, topic: string): Promise<void> {
    let channel: string | null = null;
    let mine = false;
    try {
      const match = options['match'];
      if (match !== undefined && match !== 'exact') throw new WampError(Uri.OPTION_NOT_ALLOWED, `match ${JSON.stringify(String(match).slice(0, 20))}: only exact matching (Tidings channels are exact)`);
      channel = this.topicChannel(topic);
      if (!grantsAllow(this.identity!.subscribe, channel)) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not subscribe to ${channel}`);
      const existing = this.channelSubs.get(channel);
      if (existing !== undefined) {
        // The spec: subscribing again answers with the existing subscription.
        this.send([Msg.SUBSCRIBED, request, existing]);
        return;
      }
      const pending = this.joining.get(channel);
      if (pending) {
        this.send([Msg.SUBSCRIBED, request, await pending]);
        return;
      }
      if (this.channelSubs.size + this.joining.size >= this.wamp.config.max_subscriptions) {
        throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${this.wamp.config.max_subscriptions} subscriptions per session`);
      }
      mine = true;
      this.gate.hold(channel); // events before SUBSCRIBED wait for it
      const joined = this.join(channel);
      this.joining.set(channel, joined);
      const sub = await joined;
      this.send([Msg.SUBSCRIBED, request, sub]);
    } catch (err) {
      if (this.state !== 'closed') this.sendError(Msg.SUBSCRIBE, request, err);
    } finally {
      if (mine && channel !== null) {
        this.joining.delete(channel);
        this.unhold(channel);
      }
    }
  }

  private async join(channel: string): Promise<number> {
    const hub = this.wamp.edge.hub;
    await hub.joinChannel(this, channel);
    if (this.state === 'closed') {
      hub.leaveChannel(this, channel);
      throw new TidingsError(ErrorCodes.UNAVAILABLE, 'session closed');
    }
    const sub = this.wamp.acquireSubscription(channel);
    this.channelSubs.set(channel, sub);
    this.subChannels.set(sub, channel);
    this.wamp.link.join(this.id, channel);
    return sub;
  }

  private unsubscribe(request: number, subscription: number): void {
    const channel = this.subChannels.get(subscription);
    if (channel === undefined) {
      this.sendError(Msg.UNSUBSCRIBE, request, new WampError(Uri.NO_SUCH_SUBSCRIPTION, `no subscription ${subscription} in this session`));
      return;
    }
    this.leave(channel, true);
    this.send([Msg.UNSUBSCRIBED, request]);
  }

  private leave(channel: string, report: boolean): void {
    const sub = this.channelSubs.get(channel);
    if (sub === undefined) return;
    this.channelSubs.delete(channel);
    this.subChannels.delete(sub);
    this.wamp.edge.hub.leaveChannel(this, channel);
    this.wamp.releaseSubscription(channel);
    if (report) this.wamp.link.leave(this.id, channel);
    this.gate.forget(channel);
  }
}
