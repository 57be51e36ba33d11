/**
 * Edge feature: native connections in the cluster state. Reports every
 * connection, join and leave to the director (StateLink), answers the client
 * methods `presence` and `presence_stats` (token grant `presence`), and acts
 * on the director's server-side subscribe/unsubscribe/disconnect. A
 * server-side (un)subscribe is told to the client with a
 * `{"type":"subscribed"|"unsubscribed","channel",...}` push.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import { CloseCodes, ErrorCodes, TidingsError } from '../protocol/errors.js';
import { channelProblem, grantsAllow } from '../protocol/names.js';
import { encodeMsgpack } from '../protocol/codec.js';
import type { EdgeServer } from './edge-server.js';
import type { ClientConnection } from './connection.js';
import { binaryFrame, textFrame } from './frames.js';
import { stateLinkOf, type TrackedConnection } from './state-link.js';
import { StateApi } from '../api/state-api.js';

function pushFrame(value: unknown): { json: Buffer; msgpack: () => Buffer } {
  return { json: textFrame(Buffer.from(JSON.stringify(value))), msgpack: () => binaryFrame(encodeMsgpack(value)) };
}

/** A native connection as the state link sees it: methods on the prototype, so an idle connection pays for one small object, not four closures. */
class TrackedNative implements TrackedConnection {
  constructor(
    private readonly edge: EdgeServer,
    private readonly conn: ClientConnection,
    private readonly log: Logger,
  ) {}

  get id(): string {
    return this.conn.id;
  }

  get user(): string | null {
    return this.conn.user;
  }

  channels(): Iterable<string> {
    return this.conn.subscriptions;
  }

  subscribeServerSide(channels: readonly string[]): void {
    const conn = this.conn;
    for (const channel of channels) {
      if (conn.subscriptions.has(channel) || conn.isClosed()) continue;
      this.edge.subscribe(conn, channel, undefined).then(
        ({ result, afterReply }) => {
          conn.sendShared(pushFrame({ type: 'subscribed', ...(result as object), server: true }));
          afterReply();
        },
        (err: Error) => this.log.warn({ conn: conn.id, channel, err: err.message }, 'server-side subscribe failed'),
      );
    }
  }

  unsubscribeServerSide(channels: readonly string[]): void {
    for (const channel of channels) {
      if (!this.conn.subscriptions.delete(channel)) continue;
      void this.edge.unsubscribe(this.conn, channel);
      this.conn.sendShared(pushFrame({ type: 'unsubscribed', channel, server: true }));
    }
  }

  disconnect(): void {
    this.conn.close(CloseCodes.DISCONNECTED);
  }
}

function presenceChannel(conn: ClientConnection, params: Record<string, unknown>): string {
  const channel = params['channel'];
  const problem = channelProblem(channel);
  if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
  if (!grantsAllow(conn.identity?.presence, channel as string)) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `no presence grant for ${channel as string}`);
  return channel as string;
}

export function presenceFeature(edge: EdgeServer, config: Config, log: Logger): void {
  const api = new StateApi(config, edge.commands, log.child({ component: 'state-api' }));
  edge.addRoute((req, res, path) => api.handle(req, res, path));
  const link = stateLinkOf(edge, log.child({ component: 'state-link' }));
  edge.controlHandlers.push((body) => link.onControl(body));
  edge.extraMethods.set('presence', async (conn, params) => {
    const r = await edge.commands.request<{ channel: string; users: Array<{ user: string; connections: string[]; state: unknown }> }>('presence', {
      channel: presenceChannel(conn, params),
    });
    // Clients get counts, never connection ids: a registered channelstream conn_id is a bearer secret.
    return { channel: r.channel, users: r.users.map((u) => ({ user: u.user, connections: u.connections.length, state: u.state })) };
  });
  edge.extraMethods.set('presence_stats', (conn, params) => edge.commands.request('presence_stats', { channel: presenceChannel(conn, params) }));
  if (!edge.websocketEnabled) return;
  edge.connectedHook = (conn) => link.attach(new TrackedNative(edge, conn, log));
  edge.subscribed = (conn, channel) => link.join(conn.id, channel);
  edge.unsubscribed = (conn, channel) => link.leave(conn.id, channel);
  edge.closedHook = (conn) => link.close(conn.id);
}
