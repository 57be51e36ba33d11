/**
 * One omnibus client on a Session (a websocket at /ec, or SockJS under /ec/).
 *
 * Frames are handled one after another in arrival order (an authenticate
 * that asks the web app finishes before the subscribe behind it runs), with
 * at most MAX_QUEUED waiting (SessionConnection). Where omnibus silently ignored a channel
 * message (not authenticated, not subscribed, not allowed), Tidings answers
 * `!publish:{"type":"publish","success":false,"payload":{"channel":..,"error":..}}`:
 * omnibus.js ignores replies to commands it does not know, and nothing a
 * client sends is dropped without a word. A connection that has not
 * authenticated within connect_timeout is closed (4003).
 */
import type { Logger } from 'pino';
import type { EdgeServer } from '../edge/edge-server.js';
import type { SharedPush } from '../edge/frames.js';
import { SharedText, type Session } from '../edge/session.js';
import { SessionConnection } from '../edge/session-connection.js';
import { ErrorCodes, TidingsError, toErrorBody } from '../protocol/errors.js';
import { channelProblem } from '../protocol/names.js';
import { checkJsonTextDepth } from '../protocol/payload.js';
import type { OmnibusAuth, OmnibusAuthenticator } from './authenticators.js';
import { clientMessageData, commandReply, failurePayload, omnibusText, parseOmnibusFrame } from './wire.js';

/** Key of the omnibus view of a push (SharedPush.view). */
const OMNIBUS_VIEW = {};

function omnibusView(push: SharedPush): SharedText | null {
  return push.view(OMNIBUS_VIEW, (p) => {
    const text = omnibusText(p.json.toString('utf8'));
    return text === null ? null : new SharedText(text);
  });
}

export class OmnibusConnection extends SessionConnection {
  private auth: OmnibusAuth | null = null;
  private authenticating = false;
  private readonly joining = new Set<string>();

  constructor(session: Session, edge: EdgeServer, private readonly authenticator: OmnibusAuthenticator, log: Logger, onEnd: (c: OmnibusConnection) => void) {
    super(session, edge, log, onEnd as (c: SessionConnection) => void);
  }

  deliver(push: SharedPush): void {
    if (this.closed || push.channel === null || !this.subscriptions.has(push.channel)) return;
    const view = omnibusView(push);
    if (view) this.session.send(view);
  }

  protected proven(): boolean {
    return this.auth !== null;
  }

  /** A frame refused as a whole: answered as a failed publish, which omnibus.js ignores. */
  protected refuse(err: unknown): void {
    this.fail('publish', null, err);
  }

  protected async handle(text: string): Promise<void> {
    let frame;
    try {
      frame = parseOmnibusFrame(text);
    } catch (err) {
      this.fail('publish', null, err);
      return;
    }
    if (frame.kind === 'message') {
      await this.publish(frame.channel, frame.json);
      return;
    }
    const { command, args } = frame;
    switch (command) {
      case 'authenticate':
        await this.authenticate(args);
        return;
      case 'subscribe':
        await this.subscribe(args);
        return;
      case 'unsubscribe':
        await this.unsubscribe(args);
        return;
      default:
        // omnibus' answer to a command it has no handler for.
        this.send(commandReply(command, false, null));
    }
  }

  private send(text: string): void {
    if (!this.closed) this.session.send(text);
  }

  private fail(command: string, base: Record<string, unknown> | null, err: unknown): void {
    if (!(err instanceof TidingsError)) this.log.error({ err }, `omnibus ${command} failed`);
    this.send(commandReply(command, false, failurePayload(base, toErrorBody(err))));
  }

  private async authenticate(args: string): Promise<void> {
    if (this.auth || this.authenticating) {
      this.fail('authenticate', null, new TidingsError(ErrorCodes.ALREADY_CONNECTED, 'this connection has authenticated already'));
      return;
    }
    this.authenticating = true;
    try {
      const auth = await this.authenticator.authenticate(args, this.session.request);
      if (this.closed) return;
      this.auth = auth;
      this.connected();
      this.send(commandReply('authenticate', true, null));
    } catch (err) {
      this.fail('authenticate', null, err);
    } finally {
      this.authenticating = false;
    }
  }

  private requireAuth(): OmnibusAuth {
    if (!this.auth) throw new TidingsError(ErrorCodes.NOT_AUTHENTICATED, 'send !authenticate:<identifier>[:<user_id>:<token>] first');
    return this.auth;
  }

  private async subscribe(channel: string): Promise<void> {
    const base = { channel };
    try {
      const auth = this.requireAuth();
      const problem = channelProblem(channel);
      if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
      if (this.subscriptions.has(channel) || this.joining.has(channel)) throw new TidingsError(ErrorCodes.ALREADY_SUBSCRIBED, channel);
      const max = this.edge.config.max_subscriptions;
      if (this.subscriptions.size + this.joining.size >= max) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${max} subscriptions per connection`);
      await auth.canSubscribe(channel);
      this.joining.add(channel);
      try {
        await this.edge.hub.joinChannel(this, channel);
      } finally {
        this.joining.delete(channel);
      }
      if (this.closed) {
        this.edge.hub.leaveChannel(this, channel);
        return;
      }
      this.subscriptions.add(channel);
      this.send(commandReply('subscribe', true, base));
    } catch (err) {
      this.fail('subscribe', base, err);
    }
  }

  private async unsubscribe(channel: string): Promise<void> {
    const base = { channel };
    try {
      const auth = this.requireAuth();
      if (!this.subscriptions.has(channel)) throw new TidingsError(ErrorCodes.NOT_SUBSCRIBED, channel);
      await auth.canUnsubscribe(channel);
      if (this.subscriptions.delete(channel)) this.edge.hub.leaveChannel(this, channel);
      this.send(commandReply('unsubscribe', true, base));
    } catch (err) {
      this.fail('unsubscribe', base, err);
    }
  }

  /** A channel message: published when authenticated, subscribed to the channel and allowed to publish there. */
  private async publish(channel: string, json: string): Promise<void> {
    const base = { channel };
    try {
      const auth = this.requireAuth();
      if (!this.subscriptions.has(channel)) throw new TidingsError(ErrorCodes.NOT_SUBSCRIBED, `subscribe to ${channel} before sending to it`);
      checkJsonTextDepth(json);
      const data = clientMessageData(json, auth.identifier);
      await auth.canPublish(channel);
      // The native sender is the proven user (null when anonymous), never what the client wrote.
      await this.edge.commands.request('publish', { channel, data, sender: auth.user, no_history: false });
    } catch (err) {
      this.fail('publish', base, err);
    }
  }
}
