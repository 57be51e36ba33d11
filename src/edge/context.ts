/** What a client connection needs from the edge that holds it. */
import type { Counter } from 'prom-client';
import type { Config } from '../config/resolve.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { CommandClient } from '../zmq/command-client.js';
import type { Hub } from './hub.js';
import type { FlushScheduler } from './outbox.js';
import type { ClientConnection } from './connection.js';

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
  /** Methods beyond the core ones (history, presence, ...). */
  readonly extraMethods: Map<string, MethodHandler>;
  subscribe(conn: ClientConnection, channel: string, recover: unknown): Promise<SubscribeOutcome>;
  unsubscribe(conn: ClientConnection, channel: string): void;
  onConnected(conn: ClientConnection): void;
  /** A client's token (or other proof) was refused: counted and logged with the reason. */
  noteAuthRefused?(method: 'token', reason: string, detail: string): void;
  forget(conn: ClientConnection): void;
}
