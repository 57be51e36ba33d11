/** What a client connection needs from the edge that holds it. */
import type { Counter } from 'prom-client';
import type { Config } from '../config/resolve.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { CommandClient } from '../zmq/command-client.js';
import type { Hub } from './hub.js';
import type { FlushScheduler } from './outbox.js';
import type { ClientConnection } from './connection.js';
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
  readonly metrics: { slowConsumers: Counter };
  /** Where a client's failure is counted and logged, so it ends at most that client's connection. */
  readonly loops: LoopGuard;
  /** Methods beyond the core ones (history, presence, ...). */
  readonly extraMethods: Map<string, MethodHandler>;
  subscribe(conn: ClientConnection, channel: string, recover: unknown): Promise<SubscribeOutcome>;
  unsubscribe(conn: ClientConnection, channel: string): void;
  onConnected(conn: ClientConnection): void;
  forget(conn: ClientConnection): void;
}
