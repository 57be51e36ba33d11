/** Public types of the client SDK. */
import type { ConnectResult, DirectPush, MessagePush, StreamPosition } from '../protocol/messages.js';
import type { RetryOptions } from './backoff.js';
import type { Reason } from './reasons.js';
import type { FallbackOption } from './fallback.js';

export type { ConnectResult, DirectPush, MessagePush, StreamPosition } from '../protocol/messages.js';
export type { Reason } from './reasons.js';

/**
 * The part of the WHATWG WebSocket the SDK uses; browsers' WebSocket and `ws`'s
 * both fit. Handler events are `any` because each implementation has its own
 * event classes; the SDK reads only `data` (message) and `code`/`reason` (close).
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /* eslint-disable @typescript-eslint/no-explicit-any */
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  /* eslint-enable @typescript-eslint/no-explicit-any */
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** A token for `connect`, or null/undefined to connect anonymously. */
export type TokenSupplier = () => string | null | undefined | Promise<string | null | undefined>;

export interface ClientOptions extends Partial<RetryOptions> {
  /** Websocket URLs of edges, e.g. ['wss://a.example.com/ws', 'wss://b.example.com/ws'], in order of preference. */
  urls: string[];
  /** The WebSocket class: omit in browsers; in Node pass `ws`'s default export. */
  WebSocket?: WebSocketConstructor;
  /** Called before every connect and reconnect, so an expired token is replaced. */
  getToken?: TokenSupplier;
  /** Seconds a request (and the connect handshake) may take. Default 10. */
  timeout?: number;
  /** Seconds added to the server's ping interval before a silent connection is dropped. Default 5. */
  pingMargin?: number;
  /** Calls waiting for a connection, at most. Default 1000. */
  maxPendingCalls?: number;
  /**
   * HTTP fallback when websockets are blocked: the same protocol over SockJS at
   * the edge's <base>/sockjs. `true` in browsers loads sockjs-client from the
   * edge on first need; in Node pass the class (`import SockJS from 'sockjs-client'`).
   * Default false (websockets only).
   */
  fallback?: FallbackOption;
  /** Websocket attempts in a row that fail before opening, before the fallback is tried on the same URL (kept once it opens). Default 1. */
  fallbackAfter?: number;
  /** sockjs-client transports the fallback may use. Default: all but websocket. */
  fallbackTransports?: string[];
}

export type ConnectionState = 'disconnected' | 'connecting' | 'connected';

export interface StateChange<S> {
  state: S;
  previous: S;
  reason: Reason;
}

export interface ConnectingEvent {
  url: string;
  /** Failed attempts since the last connected session. */
  attempt: number;
}

export interface ConnectedEvent extends ConnectResult {
  url: string;
  /** 'sockjs' when connected through the HTTP fallback. */
  transport: 'websocket' | 'sockjs';
}

export interface PresenceUser {
  user: string;
  /** Number of the user's connections in the channel, on every node (ids are never shown to clients). */
  connections: number;
  /** The user's public state. */
  state: unknown;
}

export interface PresenceResult {
  channel: string;
  users: PresenceUser[];
}

export interface PresenceStats {
  channel: string;
  users: number;
  connections: number;
}

export interface JoinEvent {
  type: 'join';
  channel: string;
  user: string;
  state?: unknown;
  time: number;
}

export interface LeaveEvent {
  type: 'leave';
  channel: string;
  user: string;
  time: number;
}

export interface HistoryOptions {
  /** Messages after this position (else the newest). */
  since?: StreamPosition;
  limit?: number;
}

export type { HistoryResult } from '../protocol/messages.js';

export interface ClientEvents {
  state: StateChange<ConnectionState>;
  connecting: ConnectingEvent;
  connected: ConnectedEvent;
  /** A session or an attempt ended; `state` says whether a reconnect follows. */
  disconnected: Reason;
  /** Every channel message, after the subscription's own listeners (duplicates already dropped). */
  message: MessagePush;
  /** The server API subscribed or unsubscribed this connection; its messages come as 'message' events. */
  serverSubscription: { channel: string; subscribed: boolean };
  direct: DirectPush;
  join: JoinEvent;
  leave: LeaveEvent;
  /** Pushes the SDK has no event of its own for (e.g. `state` user-state changes), as received. */
  push: { type: string; [key: string]: unknown };
  /** Errors not tied to a call: error pushes, failed resubscribes. */
  error: { error: Error; channel?: string };
}

export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed';

export interface SubscribedEvent {
  channel: string;
  offset: number;
  epoch: string;
  /** True on a resubscribe after a reconnect. */
  resubscribed: boolean;
  /** On a resubscribe: whether every missed message was replayed. */
  recovered: boolean;
  /** Missed messages replayed after this event. */
  replayed: number;
}

export interface SubscriptionEvents {
  state: StateChange<SubscriptionState>;
  subscribed: SubscribedEvent;
  message: MessagePush;
  join: JoinEvent;
  leave: LeaveEvent;
  error: { error: Error; channel: string };
}
