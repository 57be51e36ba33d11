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
import { MAX_PAYLOAD_DEPTH, checkValueDepth } from '../protocol/payload.js';
import type { Identity } from '../auth/authenticator.js';
import { Outbox } from '../edge/outbox.js';
import { binaryFrame, textFrame, type SharedPush } from '../edge/frames.js';
import type { Listener } from '../edge/hub.js';
import type { TrackedConnection } from '../edge/state-link.js';
import { decodeMessage, encodeMessage } from './codec.js';
import { errorParts, WampError } from './error-map.js';
import { publicationId, randomId } from './ids.js';
import { dataFromPublish } from './payload-map.js';
import { MAX_ID, Msg, ProtocolViolation, Uri, isDict, messageName, isReservedUri, parseClientMessage, uriProblem, withPayload, type ClientMessage, type Dict, type Serializer } from './messages.js';
import type { WampEdge } from './edge.js';
import { EventGate } from './event-gate.js';

type State = 'hello' | 'challenging' | 'established' | 'closing' | 'closed';

/** Per-session bounds (documented in docs/wamp.md). */
export const SESSION_LIMITS = Object.freeze({
  /** CALLs of this session waiting for their result. */
  calls: 1000,
  /** INVOCATIONs sent to this session (as callee) not yet answered. */
  invocations: 1000,
  /** Procedures this session may hold registered. */
  registrations: 1000,
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
  private readonly registrations = new Map<number, string>();
  private registering = 0;
  private publishing = 0;
  private readonly calls = new Map<number, { canceled: boolean }>();
  /** INVOCATION.Request -> the director's invocation ID, and back. */
  private readonly invocations = new Map<number, number>();
  private readonly invocationRequests = new Map<number, number>();
  private nextRequest = 1;
  private attached = false;
  private expiryTimer: NodeJS.Timeout | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  private closingCode: CloseSpec = CloseCodes.NORMAL;

  constructor(
    private readonly ws: WebSocket,
    socket: Socket,
    readonly serializer: Serializer,
    private readonly wamp: WampEdge,
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
  private clientHas(role: string, feature: string): boolean {
    const r = this.clientRoles[role];
    return isDict(r) && isDict(r['features']) && r['features'][feature] === true;
  }

  // --- output -------------------------------------------------------------

  private send(message: unknown[]): void {
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

  private sendError(requestType: Msg, request: number, err: unknown): void {
    if (!(err instanceof TidingsError) && !(err instanceof WampError)) this.log.error({ err }, 'WAMP request failed');
    const e = errorParts(err);
    this.send([Msg.ERROR, requestType, request, {}, e.uri, e.args, e.kwargs]);
  }

  /** ABORT with a reason, then close (4035). */
  abort(reason: string, message: string): void {
    if (this.state === 'closed') return;
    this.log.info({ reason, message }, 'WAMP session aborted');
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
    this.outbox.flush();
    this.state = 'closed';
    try {
      this.ws.close(spec.code, detail ? `${spec.reason}: ${detail}`.slice(0, 120) : spec.reason);
    } catch {
      this.ws.terminate();
    }
    setTimeout(() => this.ws.terminate(), 2000).unref();
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
    if (this.registrations.size > 0 || this.registering > 0 || this.invocations.size > 0 || this.calls.size > 0) {
      this.wamp.edge.commands.request('wamp_session_closed', { instance: this.wamp.link.instance, session: this.sessionId }).catch((err: Error) => {
        this.log.warn({ err: err.message }, 'director not told of a closed WAMP session; its registrations go with presence');
      });
    }
    this.registrations.clear();
    this.invocations.clear();
    this.invocationRequests.clear();
    this.calls.clear();
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
        void this.register(msg.request, msg.options, msg.procedure);
        return;
      case Msg.UNREGISTER:
        void this.unregister(msg.request, msg.registration);
        return;
      case Msg.CALL:
        if (this.calls.has(msg.request)) throw new ProtocolViolation(`CALL request ${msg.request} is already in flight`);
        void this.call(msg.request, msg.options, msg.procedure, msg.args, msg.kwargs);
        return;
      case Msg.CANCEL:
        this.cancel(msg.request);
        return;
      case Msg.YIELD:
        this.answer(msg.request, undefined, msg.args, msg.kwargs);
        return;
      case Msg.ERROR:
        if (msg.requestType !== Msg.INVOCATION) throw new ProtocolViolation(`ERROR for request type ${msg.requestType}: a client only answers INVOCATION with ERROR`);
        this.answer(msg.request, msg.error, msg.args, msg.kwargs);
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

  // --- dealer, caller and callee sides -------------------------------------

  private procedureOf(procedure: string): string {
    const problem = uriProblem(procedure) ?? (isReservedUri(procedure) ? 'the wamp. prefix is reserved' : undefined);
    if (problem) throw new TidingsError(ErrorCodes.WAMP_INVALID_URI, `${procedure.slice(0, 100)}: ${problem}`);
    return procedure;
  }

  private checkPayload(args: unknown[] | undefined, kwargs: Dict | undefined): void {
    // The arguments list and the keyword dictionary are one level above the payload values.
    if (args) checkValueDepth(args, MAX_PAYLOAD_DEPTH + 1);
    if (kwargs) checkValueDepth(kwargs, MAX_PAYLOAD_DEPTH + 1);
    const size = JSON.stringify([args ?? [], kwargs ?? {}]).length;
    if (size > this.wamp.config.max_message_size) throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${size} bytes > max_message_size ${this.wamp.config.max_message_size}`);
  }

  private async register(request: number, options: Dict, procedure: string): Promise<void> {
    let counted = false;
    try {
      const match = options['match'];
      if (match !== undefined && match !== 'exact') throw new WampError(Uri.OPTION_NOT_ALLOWED, 'only exact matching registrations');
      const invoke = options['invoke'];
      if (invoke !== undefined && invoke !== 'single') throw new WampError(Uri.OPTION_NOT_ALLOWED, 'only single registrations (one callee per procedure)');
      const p = this.procedureOf(procedure);
      if (!grantsAllow(this.identity!.register, p)) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not register ${p}`);
      if (this.registrations.size + this.registering >= SESSION_LIMITS.registrations) {
        throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${SESSION_LIMITS.registrations} registrations per session`);
      }
      this.registering++;
      counted = true;
      const r = await this.wamp.edge.commands.request<{ registration: number }>('wamp_register', {
        edge: this.wamp.edge.edgeId,
        instance: this.wamp.link.instance,
        session: this.sessionId,
        procedure: p,
      });
      if (this.state === 'closed') {
        // Gone meanwhile: wamp_session_closed went before this reply, so undo it here.
        void this.wamp.edge.commands.request('wamp_unregister', { instance: this.wamp.link.instance, session: this.sessionId, registration: r.registration }).catch(() => undefined);
        return;
      }
      this.registrations.set(r.registration, p);
      this.send([Msg.REGISTERED, request, r.registration]);
    } catch (err) {
      this.sendError(Msg.REGISTER, request, err);
    } finally {
      if (counted) this.registering--;
    }
  }

  private async unregister(request: number, registration: number): Promise<void> {
    if (!this.registrations.has(registration)) {
      this.sendError(Msg.UNREGISTER, request, new TidingsError(ErrorCodes.WAMP_NO_SUCH_REGISTRATION, `no registration ${registration} in this session`));
      return;
    }
    this.registrations.delete(registration);
    try {
      await this.wamp.edge.commands.request('wamp_unregister', { instance: this.wamp.link.instance, session: this.sessionId, registration });
      this.send([Msg.UNREGISTERED, request]);
    } catch (err) {
      this.sendError(Msg.UNREGISTER, request, err);
    }
  }

  private async call(request: number, options: Dict, procedure: string, args: unknown[] | undefined, kwargs: Dict | undefined): Promise<void> {
    const entry = { canceled: false };
    try {
      const p = this.procedureOf(procedure);
      if (!grantsAllow(this.identity!.call, p)) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not call ${p}`);
      if (this.calls.size >= SESSION_LIMITS.calls) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${SESSION_LIMITS.calls} calls in flight per session`);
      this.checkPayload(args, kwargs);
      const c = this.wamp.config;
      const requested = options['timeout'];
      const max = c.wamp_call_timeout * 1000;
      const timeoutMs = typeof requested === 'number' && requested > 0 ? Math.min(requested, max) : max;
      this.calls.set(request, entry);
      const r = await this.wamp.edge.commands.request<{ error?: string; args?: unknown[]; kwargs?: Dict }>(
        'wamp_call',
        {
          procedure: p,
          caller: { edge: this.wamp.edge.edgeId, instance: this.wamp.link.instance, session: this.sessionId, authid: this.identity!.user },
          args,
          kwargs,
          timeout_ms: timeoutMs,
        },
        // The director times the call out; this only covers a director that stops answering.
        timeoutMs + c.command_timeout * 1000,
      );
      if (entry.canceled || this.state === 'closed') return;
      if (typeof r.error === 'string') this.send(withPayload([Msg.ERROR, Msg.CALL, request, {}, r.error], r.args, r.kwargs));
      else this.send(withPayload([Msg.RESULT, request, {}], r.args, r.kwargs));
    } catch (err) {
      if (!entry.canceled && this.state !== 'closed') this.sendError(Msg.CALL, request, err);
    } finally {
      if (this.calls.get(request) === entry) this.calls.delete(request);
    }
  }

  /** CANCEL: the caller gets wamp.error.canceled now; the callee's late answer is discarded ("skip" mode). */
  private cancel(request: number): void {
    const entry = this.calls.get(request);
    if (!entry) return; // answered already
    entry.canceled = true;
    this.calls.delete(request);
    this.send([Msg.ERROR, Msg.CALL, request, {}, Uri.CANCELED, ['canceled by the caller']]);
  }

  registered(): IterableIterator<[number, string]> {
    return this.registrations.entries();
  }

  /** The director could not restore a registration (another session took the procedure meanwhile). */
  revoke(registration: number): void {
    const procedure = this.registrations.get(registration);
    if (procedure === undefined) return;
    this.registrations.delete(registration);
    this.log.warn({ procedure, registration }, 'WAMP registration lost: another session registered the procedure while the director was away');
    // Registration revocation (advanced profile) where the callee takes it.
    if (this.clientHas('callee', 'registration_revocation')) this.send([Msg.UNREGISTERED, 0, { registration, reason: 'wamp.error.procedure_already_exists' }]);
  }

  /** An INVOCATION for this session (as callee), from the director. */
  invoke(body: Dict): void {
    const invocation = body['invocation'] as number;
    if (this.invocations.size >= SESSION_LIMITS.invocations) {
      this.wamp.answerDirector(this.sessionId, invocation, { error: Uri.LIMIT_EXCEEDED, args: [`the callee has ${SESSION_LIMITS.invocations} invocations unanswered`] });
      return;
    }
    const request = this.nextRequest;
    this.nextRequest = this.nextRequest >= MAX_ID ? 1 : this.nextRequest + 1;
    this.invocations.set(request, invocation);
    this.invocationRequests.set(invocation, request);
    const details: Dict = { procedure: body['procedure'] };
    if (typeof body['caller_authid'] === 'string') details['caller_authid'] = body['caller_authid'];
    const args = Array.isArray(body['args']) ? body['args'] : undefined;
    const kwargs = isDict(body['kwargs']) ? body['kwargs'] : undefined;
    this.send(withPayload([Msg.INVOCATION, request, body['registration'], details], args, kwargs));
  }

  /** The director gave up an invocation (timeout, caller left): INTERRUPT a callee that takes it. */
  interrupt(invocation: number, reason: string): void {
    const request = this.invocationRequests.get(invocation);
    if (request === undefined) return;
    this.invocationRequests.delete(invocation);
    this.invocations.delete(request);
    if (this.clientHas('callee', 'call_canceling')) this.send([Msg.INTERRUPT, request, { mode: 'killnowait', reason }]);
  }

  private answer(request: number, error: string | undefined, args: unknown[] | undefined, kwargs: Dict | undefined): void {
    const invocation = this.invocations.get(request);
    if (invocation === undefined) {
      // An answer to an invocation given up (interrupted) is discarded; one never sent is a violation.
      if (request < this.nextRequest) return;
      throw new ProtocolViolation(`${error === undefined ? 'YIELD' : 'ERROR'} for INVOCATION ${request}, which was never sent`);
    }
    this.invocations.delete(request);
    this.invocationRequests.delete(invocation);
    let outcome: { error?: string; args?: unknown[]; kwargs?: Dict } = { args, kwargs };
    if (error !== undefined) outcome.error = uriProblem(error) ? Uri.INVALID_ARGUMENT : error;
    try {
      this.checkPayload(args, kwargs);
    } catch (err) {
      const e = errorParts(err);
      outcome = { error: e.uri, args: [`the callee's answer was refused: ${e.args[0] as string}`], kwargs: e.kwargs };
    }
    this.wamp.answerDirector(this.sessionId, invocation, outcome);
  }
}
