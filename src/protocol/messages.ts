/**
 * Native client protocol v1: the shapes of frames. See docs/protocol.md.
 *
 * Client to server: commands `{id, method, params}` and `{type: "pong"}`.
 * Server to client: replies `{id, result}` / `{id, error}`, and pushes with a
 * `type`: `message` (channel), `direct` (to a user), `ping`, `error`.
 */
import type { ErrorBody } from './errors.js';

export const PROTOCOL_VERSION = 1;
export const SUBPROTOCOL_JSON = 'tidings.v1.json';
export const SUBPROTOCOL_MSGPACK = 'tidings.v1.msgpack';

export type Method =
  | 'connect'
  | 'subscribe'
  | 'unsubscribe'
  | 'publish'
  | 'presence'
  | 'presence_stats'
  | 'history'
  | 'ping';

export const METHODS: readonly Method[] = [
  'connect',
  'subscribe',
  'unsubscribe',
  'publish',
  'presence',
  'presence_stats',
  'history',
  'ping',
];

export interface Command {
  id: number;
  method: Method;
  params?: Record<string, unknown>;
}

export interface ConnectParams {
  token?: string;
}

export interface ConnectResult {
  client: string;
  user: string | null;
  /** Seconds between server pings. */
  ping: number;
  /** Seconds of client silence after which the server closes the connection. */
  idle_timeout: number;
  /** Token expiry, unix seconds, or null. */
  expires: number | null;
  node: string;
  /** Commands this connection may have in flight (client_max_inflight); more are refused with 135. */
  max_inflight?: number;
}

export interface StreamPosition {
  offset: number;
  epoch: string;
}

export interface SubscribeParams {
  channel: string;
  /** Resume from this position: messages after `offset` are replayed first. */
  recover?: StreamPosition;
}

export interface SubscribeResult {
  channel: string;
  /** Offset of the last message before the live stream starts for this subscriber. */
  offset: number;
  epoch: string;
  /** Present when `recover` was asked: whether every missed message was replayed. */
  recovered?: boolean;
  /** Number of replayed messages pushed before this reply's live stream. */
  replayed?: number;
}

export interface PublishParams {
  channel: string;
  data: unknown;
  no_history?: boolean;
}

export interface PublishResult {
  offset: number;
  epoch: string;
}

export interface HistoryParams {
  channel: string;
  since?: StreamPosition;
  limit?: number;
}

export interface HistoryResult {
  channel: string;
  epoch: string;
  /** Offset of the newest message in the channel. */
  offset: number;
  messages: MessagePush[];
  /** Whether the history reaches back to `since` with no gap. */
  complete: boolean;
  /**
   * The reply stopped at its byte bound before `limit` messages: ask again
   * with `since` the last message's position for the rest (the SDK does).
   */
  more?: boolean;
}

export interface MessagePush {
  type: 'message';
  channel: string;
  offset: number;
  epoch: string;
  sender: string | null;
  time: number;
  data: unknown;
}

export interface DirectPush {
  type: 'direct';
  user: string;
  sender: string | null;
  time: number;
  data: unknown;
}

/** On channels with notify_presence: a user's first join / last leave (see docs/api.md). */
export interface PresencePush {
  type: 'join' | 'leave';
  channel: string;
  user: string;
  /** The user's public state (join only). */
  state?: unknown;
  /** Everyone present, with broadcast_presence_with_user_lists. */
  users?: Array<{ user: string; state: unknown }>;
  time: number;
  id: string;
}

export interface PingPush {
  type: 'ping';
}

export interface ErrorPush {
  type: 'error';
  error: ErrorBody;
}

export type Push = MessagePush | DirectPush | PresencePush | PingPush | ErrorPush;

export interface ReplyOk {
  id: number;
  result: unknown;
}

export interface ReplyError {
  id: number;
  error: ErrorBody;
}

export type Reply = ReplyOk | ReplyError;

export type ServerFrame = Reply | Push;

export function isReply(f: ServerFrame): f is Reply {
  return typeof (f as Reply).id === 'number';
}

/** The claims Tidings reads from a client token (JWT HS256). */
export interface TokenClaims {
  sub: string;
  exp?: number;
  iat?: number;
  grants?: {
    subscribe?: string[];
    publish?: string[];
    presence?: string[];
    history?: string[];
  };
}
