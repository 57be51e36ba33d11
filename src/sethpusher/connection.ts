/**
 * One Seth-Pusher client on a SockJS session at /connect.
 *
 * Client messages are JSON objects: `{"type": "connect", "subscriber_id": X}`
 * (Tidings adds an optional `"token"`), `{"type": "subscribe" | "unsubscribe",
 * "channel": C}`. Seth-Pusher took the subscriber id on the client's word;
 * here it must be proven: by a token whose user is X, or by auth_url
 * vouching for X (asked with the session's cookies), or it is taken as
 * claimed only when allow_anonymous is on. An unproven connect gets an error
 * and the session is closed (4020).
 *
 * Notices, as Seth-Pusher broadcast them: `{"body": "User: X connected.",
 * "target_id": X, "type": "connect"}` to every Seth-Pusher client of the
 * cluster on connect and disconnect; `"User: X subscribed to C"` and
 * `"User: X unsubscribed from C"` to channel C. What a client receives of a
 * channel or of its user is the published data itself, as JSON text.
 * Seth-Pusher logged and ignored a bad message; Tidings answers
 * `{"type": "error", "error": {code, name, message}}`.
 */
import type { Logger } from 'pino';
import type { EdgeServer } from '../edge/edge-server.js';
import type { SharedPush } from '../edge/frames.js';
import { SharedText, type Session } from '../edge/session.js';
import { SessionConnection } from '../edge/session-connection.js';
import type { Identity } from '../auth/authenticator.js';
import { CloseCodes, ErrorCodes, TidingsError, toErrorBody } from '../protocol/errors.js';
import { channelProblem, grantsAllow, isValidUser } from '../protocol/names.js';

/** The channel every Seth-Pusher connection listens to, for the notices sent to everyone. */
export const NOTICE_CHANNEL = '_sethpusher';

const SETH_VIEW = {};

/** What a Seth-Pusher client receives of a push: the data as JSON text; nothing for other pushes. */
export function sethText(pushJson: string): string | null {
  let push: Record<string, unknown>;
  try {
    push = JSON.parse(pushJson) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (push['type'] !== 'message' && push['type'] !== 'direct') return null;
  return JSON.stringify(push['data'] ?? null);
}

function sethView(push: SharedPush): SharedText | null {
  return push.view(SETH_VIEW, (p) => {
    const t = sethText(p.json.toString('utf8'));
    return t === null ? null : new SharedText(t);
  });
}

export function notice(kind: 'connect' | 'disconnect' | 'subscribe' | 'unsubscribe', id: string, channel?: string): Record<string, unknown> {
  const body =
    kind === 'connect'
      ? `User: ${id} connected.`
      : kind === 'disconnect'
        ? `User: ${id} disconnected.`
        : kind === 'subscribe'
          ? `User: ${id} subscribed to ${channel}`
          : `User: ${id} unsubscribed from ${channel}`;
  return { body, target_id: id, type: kind };
}

export class SethConnection extends SessionConnection {
  private id: string | null = null;
  private identity: Pick<Identity, 'subscribe' | 'check'> | null = null;
  private connecting = false;

  constructor(session: Session, edge: EdgeServer, log: Logger, onEnd: (c: SethConnection) => void) {
    super(session, edge, log, onEnd as (c: SessionConnection) => void);
  }

  deliver(push: SharedPush): void {
    if (this.closed) return;
    if (push.channel !== null && push.channel !== NOTICE_CHANNEL && !this.subscriptions.has(push.channel)) return;
    const v = sethView(push);
    if (v) this.session.send(v);
  }

  protected proven(): boolean {
    return this.id !== null;
  }

  protected refuse(err: unknown): void {
    if (!(err instanceof TidingsError)) this.log.error({ err }, 'Seth-Pusher message failed');
    if (!this.closed) this.session.send(JSON.stringify({ type: 'error', error: toErrorBody(err) }));
  }

  protected async handle(text: string): Promise<void> {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      throw new TidingsError(ErrorCodes.INVALID_JSON, 'a message is a JSON object');
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new TidingsError(ErrorCodes.BAD_REQUEST, 'a message is a JSON object');
    const m = msg as Record<string, unknown>;
    switch (m['type']) {
      case 'connect':
        return this.connect(m['subscriber_id'], m['token']);
      case 'subscribe':
        return this.subscribe(m['channel']);
      case 'unsubscribe':
        return this.unsubscribe(m['channel']);
      default:
        throw new TidingsError(ErrorCodes.METHOD_NOT_FOUND, `unknown message type ${JSON.stringify(String(m['type']).slice(0, 40))}`);
    }
  }

  /** Prove the subscriber id: a token for it, auth_url's word for it, or (allow_anonymous) the client's. */
  private async prove(id: string, token: unknown): Promise<Pick<Identity, 'subscribe' | 'check'>> {
    const c = this.edge.config;
    if (typeof token === 'string' && token !== '') {
      const identity = await this.edge.auth.authenticate(token);
      if (identity.user !== id) throw new TidingsError(ErrorCodes.SUBSCRIBER_ID_UNPROVEN, "the token's user is not the subscriber id");
      return identity;
    }
    const http = this.edge.httpAuth;
    if (http) {
      const base = { protocol: 'sethpusher' as const, subscriber_id: id, headers: this.session.request.headers, remote_addr: this.session.request.remoteAddress };
      const a = await http.require({ action: 'connect', ...base });
      if (a.user !== null && a.user !== id) throw new TidingsError(ErrorCodes.SUBSCRIBER_ID_UNPROVEN, 'auth_url named another user');
      return {
        subscribe: ['*'],
        check: async (action, channel) => {
          await http.require({ action, channel, user: id, ...base });
        },
      };
    }
    if (c.allow_anonymous) return { subscribe: c.anonymous_channels };
    throw new TidingsError(ErrorCodes.SUBSCRIBER_ID_UNPROVEN);
  }

  private async connect(subscriberId: unknown, token: unknown): Promise<void> {
    if (this.id !== null || this.connecting) throw new TidingsError(ErrorCodes.ALREADY_CONNECTED, 'this session is connected already');
    if (!isValidUser(subscriberId)) throw new TidingsError(ErrorCodes.INVALID_USER, 'subscriber_id must be a string of 1-200 characters');
    this.connecting = true;
    try {
      this.identity = await this.prove(subscriberId, token);
    } catch (err) {
      this.refuse(err);
      const unavailable = err instanceof TidingsError && err.spec === ErrorCodes.AUTH_UNAVAILABLE;
      const spec = unavailable ? CloseCodes.AUTH_UNAVAILABLE : CloseCodes.AUTH_FAILED;
      this.close(spec.code, spec.reason);
      return;
    } finally {
      this.connecting = false;
    }
    if (this.closed) return;
    this.connected();
    // Reachable by its subscriber id (POST /api/users/<id>/), and by the notices to everyone.
    try {
      await this.edge.hub.joinUser(this, subscriberId);
      await this.edge.hub.joinChannel(this, NOTICE_CHANNEL);
    } finally {
      if (this.closed) {
        this.edge.hub.leaveUser(this, subscriberId);
        this.edge.hub.leaveChannel(this, NOTICE_CHANNEL);
      }
    }
    if (this.closed) return;
    this.id = subscriberId;
    await this.broadcast(NOTICE_CHANNEL, notice('connect', subscriberId));
  }

  private requireConnected(): string {
    if (this.id === null) throw new TidingsError(ErrorCodes.NOT_CONNECTED);
    return this.id;
  }

  private channelOf(channel: unknown): string {
    const problem = channelProblem(channel);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    if (channel === NOTICE_CHANNEL) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `${NOTICE_CHANNEL} is reserved for notices`);
    return channel as string;
  }

  private async subscribe(ch: unknown): Promise<void> {
    const id = this.requireConnected();
    const channel = this.channelOf(ch);
    if (this.subscriptions.has(channel)) throw new TidingsError(ErrorCodes.ALREADY_SUBSCRIBED, channel);
    const max = this.edge.config.max_subscriptions;
    if (this.subscriptions.size >= max) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${max} subscriptions per connection`);
    if (!grantsAllow(this.identity!.subscribe, channel)) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not subscribe to ${channel}`);
    await this.identity!.check?.('subscribe', channel);
    await this.edge.hub.joinChannel(this, channel);
    if (this.closed) {
      this.edge.hub.leaveChannel(this, channel);
      return;
    }
    this.subscriptions.add(channel);
    await this.broadcast(channel, notice('subscribe', id, channel));
  }

  private async unsubscribe(ch: unknown): Promise<void> {
    const id = this.requireConnected();
    const channel = this.channelOf(ch);
    if (!this.subscriptions.delete(channel)) throw new TidingsError(ErrorCodes.NOT_SUBSCRIBED, channel);
    this.edge.hub.leaveChannel(this, channel);
    await this.broadcast(channel, notice('unsubscribe', id, channel));
  }

  private async broadcast(channel: string, body: Record<string, unknown>): Promise<void> {
    await this.edge.commands.request('publish', { channel, data: body, sender: null, no_history: true });
  }

  protected override onEnded(): void {
    if (this.id === null) return;
    const id = this.id;
    this.edge.hub.leaveUser(this, id);
    this.edge.hub.leaveChannel(this, NOTICE_CHANNEL);
    this.broadcast(NOTICE_CHANNEL, notice('disconnect', id)).catch((err: Error) => this.log.warn({ err: err.message }, 'disconnect notice not sent'));
  }
}
