/**
 * Why the connection or a subscription changed state. Server-side reasons are
 * the close codes of the protocol catalog (src/protocol/errors.ts), with their
 * `reconnect` flag; the client adds its own in the 3000-3999 range that the
 * websocket standard leaves to libraries, plus 1006 for a transport that
 * vanished without a close frame.
 */
import { closeByNumber, type ErrorBody } from '../protocol/errors.js';

export interface Reason {
  /** A close code of the catalog, 1006, or a client code 3000-3099. */
  readonly code: number;
  readonly name: string;
  /** Whether the client reconnects (connection) or resubscribes (subscription) by itself. */
  readonly reconnect: boolean;
  readonly message: string;
}

function reason(code: number, name: string, reconnect: boolean, message: string): Reason {
  return Object.freeze({ code, name, reconnect, message });
}

export const ClientReasons = Object.freeze({
  /** connect() was called. */
  CONNECT_CALLED: reason(3000, 'connect_called', true, 'connect() called'),
  /** disconnect() was called. */
  DISCONNECT_CALLED: reason(3001, 'disconnect_called', false, 'disconnect() called'),
  /** Nothing arrived from the server for ping + pingMargin seconds. */
  NO_PING: reason(3002, 'no_ping', true, 'no frame from the server within the ping interval and margin'),
  /** The websocket did not open, or the connect reply did not come, within the timeout. */
  CONNECT_TIMEOUT: reason(3003, 'connect_timeout', true, 'connection not established in time'),
  /** maxRetries failed attempts in a row. */
  MAX_RETRIES: reason(3004, 'max_retries', false, 'gave up after maxRetries failed attempts'),
  /** The token supplier threw or rejected. */
  TOKEN_ERROR: reason(3005, 'token_error', true, 'the token supplier failed'),
  /** The server answered connect with an error that a retry may fix. */
  CONNECT_FAILED: reason(3006, 'connect_failed', true, 'the server refused connect'),
  /** The server sent something that is not the protocol. */
  PROTOCOL_ERROR: reason(3007, 'protocol_error', true, 'malformed frame from the server'),
  /** The websocket opened. */
  TRANSPORT_OPEN: reason(3008, 'transport_open', true, 'websocket open, authenticating'),
  /** The connect reply arrived. */
  CONNECTED: reason(3009, 'connected', true, 'connected'),
  /** Subscription: subscribe() was called or the connection came back. */
  SUBSCRIBE_CALLED: reason(3010, 'subscribe_called', true, 'subscribing'),
  /** Subscription: the connection went away; it resubscribes when it is back. */
  CONNECTION_LOST: reason(3011, 'connection_lost', true, 'connection lost, will resubscribe'),
  /** Subscription: unsubscribe() was called. */
  UNSUBSCRIBE_CALLED: reason(3012, 'unsubscribe_called', false, 'unsubscribe() called'),
  /** Subscription: the subscribe reply arrived. */
  SUBSCRIBED: reason(3013, 'subscribed', true, 'subscribed'),
  /** A websocket closed with no close frame (network loss, server killed). */
  ABNORMAL: reason(1006, 'abnormal_closure', true, 'connection closed without a close frame'),
});

/** The reason for a websocket close code received from the server. */
export function reasonFromClose(code: number, text: string): Reason {
  const spec = closeByNumber(code);
  if (spec) return reason(spec.code, spec.name, spec.reconnect, text || spec.reason);
  if (code === 1006 || code === 1005) return reason(code, ClientReasons.ABNORMAL.name, true, text || ClientReasons.ABNORMAL.message);
  // Unknown codes (proxies, load balancers): treat as a transient failure.
  return reason(code, 'closed', true, text || `closed with code ${code}`);
}

/** A subscription or call failure reported by the server. */
export function reasonFromError(err: ErrorBody, reconnect: boolean): Reason {
  return reason(err.code, err.name, reconnect, err.message);
}
