/**
 * One channel subscription of a TidingsClient: its own state machine
 * (unsubscribed -> subscribing -> subscribed), the last position seen, and
 * automatic resubscribe with recovery when the connection comes back.
 */
import { ErrorCodes } from '../protocol/errors.js';
import type { MessagePush, StreamPosition, SubscribeResult } from '../protocol/messages.js';
import { Emitter } from './emitter.js';
import { RequestError, isTransient } from './errors.js';
import { ClientReasons, reasonFromError, type Reason } from './reasons.js';
import type { JoinEvent, LeaveEvent, SubscriptionEvents, SubscriptionState } from './types.js';

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  readonly connected: boolean;
  /**
   * Send a command on the current connection; `done` runs synchronously as the
   * reply is read, before the pushes that follow it (an error at once if there
   * is no connection).
   */
  send(method: string, params: Record<string, unknown>, done: (err: RequestError | null, result?: unknown) => void): void;
  removeSubscription(sub: Subscription): void;
  reportError(error: Error, channel: string): void;
}

/** Longest wait between retries of a subscribe that failed for a transient reason. */
const MAX_RESUBSCRIBE_DELAY_MS = 10_000;

export class Subscription extends Emitter<SubscriptionEvents> {
  state: SubscriptionState = 'unsubscribed';
  /** Last message seen (or the subscribe point): where a resubscribe recovers from. */
  position: StreamPosition | null = null;
  private wanted = false;
  /** Bumped on every attempt and on connection loss, so stale replies are ignored. */
  private generation = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  /** The connection session whose connect this subscription's subscribe went right behind (onOpened), or -1. */
  private sentWith = -1;

  constructor(
    readonly channel: string,
    private readonly host: SubscriptionHost,
  ) {
    super();
  }

  /** Subscribe now, or as soon as the client is connected. */
  subscribe(): void {
    if (this.wanted) return;
    this.wanted = true;
    if (this.host.connected) this.attempt();
    else this.setState('subscribing', ClientReasons.SUBSCRIBE_CALLED);
  }

  unsubscribe(): void {
    if (!this.wanted) return;
    this.wanted = false;
    this.generation++;
    this.clearRetry();
    if (this.state === 'subscribed' && this.host.connected) {
      this.host.send('unsubscribe', { channel: this.channel }, () => undefined);
    }
    this.position = null;
    this.setState('unsubscribed', ClientReasons.UNSUBSCRIBE_CALLED);
    this.host.removeSubscription(this);
  }

  /** Resolves once subscribed; rejects if the subscription ends or `timeoutSec` passes. */
  ready(timeoutSec = 10): Promise<void> {
    if (this.state === 'subscribed') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(RequestError.of(ErrorCodes.TIMEOUT, `not subscribed to ${this.channel} in ${timeoutSec} s`)), timeoutSec * 1000);
      const offSub = this.on('subscribed', () => done());
      const offState = this.on('state', (e) => {
        if (e.state === 'unsubscribed') done(new RequestError({ code: e.reason.code, name: e.reason.name, message: e.reason.message }));
      });
      const done = (err?: Error): void => {
        clearTimeout(timer);
        offSub();
        offState();
        if (err) reject(err);
        else resolve();
      };
    });
  }

  // --- called by the client -------------------------------------------------

  /** Whether the application wants this subscription (subscribe() called, not unsubscribed). */
  get isWanted(): boolean {
    return this.wanted;
  }

  /**
   * The connection of session `session` is open and its connect is being
   * sent: the subscribe goes right behind it, in the same frame (the server
   * runs commands pipelined behind connect once it settles, in order, and
   * answers connect first), a round trip sooner than after connect's reply.
   * Should connect fail, the session ends before its replies are read.
   */
  onOpened(session: number): void {
    if (!this.wanted) return;
    this.clearRetry();
    this.sentWith = session;
    this.attempt();
  }

  onConnected(session: number): void {
    const pipelined = this.sentWith === session;
    this.sentWith = -1;
    if (this.wanted && !pipelined) this.attempt();
  }

  onDisconnected(): void {
    this.generation++;
    this.clearRetry();
    if (this.wanted) this.setState('subscribing', ClientReasons.CONNECTION_LOST);
  }

  /** Returns false for a message already seen (same epoch, offset not newer). */
  handleMessage(m: MessagePush): boolean {
    if (!this.wanted) return false;
    const p = this.position;
    if (p && m.epoch === p.epoch && m.offset <= p.offset) return false;
    this.position = { offset: m.offset, epoch: m.epoch };
    this.emit('message', m);
    return true;
  }

  handlePresence(e: JoinEvent | LeaveEvent): void {
    if (!this.wanted) return;
    if (e.type === 'join') this.emit('join', e);
    else this.emit('leave', e);
  }

  // --- internals ------------------------------------------------------------

  private attempt(): void {
    const gen = ++this.generation;
    const recover = this.position;
    this.setState('subscribing', ClientReasons.SUBSCRIBE_CALLED);
    const params: Record<string, unknown> = { channel: this.channel };
    if (recover) params['recover'] = recover;
    this.host.send('subscribe', params, (err, result) => {
      if (gen !== this.generation) {
        // unsubscribe() came before this reply: undo the server-side subscription.
        if (!err && !this.wanted && this.host.connected) this.host.send('unsubscribe', { channel: this.channel }, () => undefined);
        return;
      }
      if (err) {
        this.onFailure(err);
        return;
      }
      const r = result as SubscribeResult;
      this.failures = 0;
      // With recovery in the same epoch the replayed messages follow this
      // reply and move the position on; otherwise the stream starts here
      // (unless a live message already moved it further).
      const p = this.position;
      const ahead = p !== null && p.epoch === r.epoch && p.offset > r.offset;
      if (recover && r.epoch !== recover.epoch && (r.replayed ?? 0) > 0) {
        // A position of an older epoch: the new epoch's retained history follows this reply (recovered: false).
        this.position = { offset: 0, epoch: r.epoch };
      } else if ((!recover || r.epoch !== recover.epoch) && !ahead) this.position = { offset: r.offset, epoch: r.epoch };
      this.setState('subscribed', ClientReasons.SUBSCRIBED);
      this.emit('subscribed', {
        channel: this.channel,
        offset: r.offset,
        epoch: r.epoch,
        resubscribed: recover !== null,
        recovered: r.recovered === true,
        replayed: r.replayed ?? 0,
      });
    });
  }

  private onFailure(err: RequestError): void {
    // already_subscribed: an unsubscribe of an earlier Subscription of this channel is still on its way.
    const retry = isTransient(err.code) || err.code === ErrorCodes.ALREADY_SUBSCRIBED.code;
    if (retry && this.host.connected) {
      // The director may be briefly away: retry on this connection, slower each time.
      const delay = Math.min(MAX_RESUBSCRIBE_DELAY_MS, 500 * 2 ** this.failures++);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (this.wanted && this.host.connected) this.attempt();
      }, delay);
      this.emit('error', { error: err, channel: this.channel });
      return;
    }
    if (!retry) {
      // permission_denied, invalid_channel, ...: retrying will not help.
      this.wanted = false;
      this.setState('unsubscribed', reasonFromError({ code: err.code, name: err.errorName, message: err.message }, false));
      this.emit('error', { error: err, channel: this.channel });
      this.host.reportError(err, this.channel);
      this.host.removeSubscription(this);
    }
    // Transient and disconnected: onConnected resubscribes.
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private setState(state: SubscriptionState, reason: Reason): void {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit('state', { state, previous, reason });
  }
}
