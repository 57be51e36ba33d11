/** What a client connection needs from the edge that holds it. */
import type { Counter } from 'prom-client';
import type { Config } from '../config/resolve.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { CommandClient } from '../zmq/command-client.js';
import type { Hub } from './hub.js';
import type { FlushScheduler } from './outbox.js';
import type { ClientConnection } from './connection.js';
import type { HistoryReader } from './history-reader.js';
import type { LoopGuard } from '../runtime/loop-guard.js';

export type MethodHandler = (conn: ClientConnection, params: Record<string, unknown>) => Promise<unknown> | unknown;

export interface SubscribeOutcome {
  result: unknown;
  /** Runs after the reply is queued: replays recovered messages and goes live. */
  afterReply: () => void;
}

export interface EdgeContext {
  readonly config: Config;
  readonly edgeId: string;
  readonly auth: Authenticator;
  readonly hub: Hub;
  readonly commands: CommandClient;
  readonly scheduler: FlushScheduler;
  readonly metrics: { slowConsumers: Counter; limited: Counter<'code'> };
  /** Where a client's failure is counted and logged, so it ends at most that client's connection. */
  readonly loops: LoopGuard;
  /** Methods beyond the core ones (history, presence, ...). */
  readonly extraMethods: Map<string, MethodHandler>;
  readonly history: HistoryReader;
  /**
   * Subscribe and, with `recover`, read the first page of what was missed.
   * Resolves once the director has the subscription live and has applied the
   * presence join, so the reply that follows is ordered after both.
   */
  subscribe(conn: ClientConnection, channel: string, recover: unknown): Promise<SubscribeOutcome>;
  /** Unsubscribe; resolves once the director has applied the presence leave. */
  unsubscribe(conn: ClientConnection, channel: string): Promise<void>;
  onConnected(conn: ClientConnection): void;
  /** A client's token (or other proof) was refused: counted and logged with the reason. */
  noteAuthRefused?(method: 'token', reason: string, detail: string): void;
  forget(conn: ClientConnection): void;
  /** A client websocket closed with this code: counted by code (what trackClose does for other protocols' sockets). */
  noteClosed(code: number): void;
}
