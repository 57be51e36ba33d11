/**
 * The one catalog of error codes and websocket close codes.
 *
 * Every error a client, an API caller or a publisher can receive is listed here
 * with a stable numeric code, a stable name and an HTTP status. docs/protocol.md
 * documents the same table; test/unit/catalog.test.ts checks that both agree.
 * No Node imports: the client SDK uses this module too.
 */

export interface ErrorSpec {
  readonly code: number;
  readonly name: string;
  readonly status: number;
  readonly message: string;
}

function spec(code: number, name: string, status: number, message: string): ErrorSpec {
  return Object.freeze({ code, name, status, message });
}

export const ErrorCodes = Object.freeze({
  INTERNAL: spec(100, 'internal', 500, 'internal server error'),
  UNAUTHORIZED: spec(101, 'unauthorized', 401, 'not connected: send connect with a valid token first'),
  BAD_REQUEST: spec(102, 'bad_request', 400, 'malformed request'),
  PERMISSION_DENIED: spec(103, 'permission_denied', 403, 'not allowed by the grants of the token'),
  METHOD_NOT_FOUND: spec(104, 'method_not_found', 404, 'unknown method'),
  INVALID_CHANNEL: spec(105, 'invalid_channel', 400, 'invalid channel name'),
  ALREADY_SUBSCRIBED: spec(106, 'already_subscribed', 409, 'already subscribed to this channel'),
  NOT_SUBSCRIBED: spec(107, 'not_subscribed', 409, 'not subscribed to this channel'),
  LIMIT_EXCEEDED: spec(108, 'limit_exceeded', 429, 'limit exceeded'),
  PAYLOAD_TOO_LARGE: spec(109, 'payload_too_large', 413, 'payload too large'),
  TOKEN_INVALID: spec(110, 'token_invalid', 401, 'invalid token'),
  TOKEN_EXPIRED: spec(111, 'token_expired', 401, 'token expired'),
  ALREADY_CONNECTED: spec(112, 'already_connected', 409, 'connection already authenticated'),
  UNAVAILABLE: spec(113, 'unavailable', 503, 'director unavailable, try again'),
  TIMEOUT: spec(114, 'timeout', 504, 'request timed out'),
  INVALID_JSON: spec(115, 'invalid_json', 400, 'body is not valid JSON'),
  MISSING_FIELD: spec(116, 'missing_field', 422, 'a required field is missing or has the wrong type'),
  BAD_API_KEY: spec(117, 'bad_api_key', 401, 'missing or wrong API key'),
  BAD_SIGNATURE: spec(118, 'bad_signature', 401, 'bad request signature'),
  FORBIDDEN_SOURCE: spec(119, 'forbidden_source', 403, 'source address not allowed'),
  NOT_FOUND: spec(120, 'not_found', 404, 'not found'),
  METHOD_NOT_ALLOWED: spec(121, 'method_not_allowed', 405, 'HTTP method not allowed'),
  UNSUPPORTED_MEDIA_TYPE: spec(122, 'unsupported_media_type', 415, 'body must be application/json'),
  INVALID_USER: spec(123, 'invalid_user', 400, 'invalid user id'),
  UNKNOWN_CONNECTION: spec(124, 'unknown_connection', 404, 'unknown connection id'),
  INVALID_POSITION: spec(125, 'invalid_position', 400, 'invalid stream position'),
  PAYLOAD_TOO_DEEP: spec(126, 'payload_too_deep', 400, 'payload nests too deeply'),
  TOO_MANY_COMMANDS: spec(135, 'too_many_commands', 429, 'too many commands in flight on this connection'),
  HISTORY_LIMIT: spec(136, 'history_limit', 429, 'history read allowance of this connection used up'),
  // 155-164: several directors and the state engine
  NOT_ACTIVE: spec(155, 'not_active', 503, 'this director is standing by; the active director answers'),
  FENCED: spec(156, 'fenced', 503, 'this director lost its lease; nothing was sequenced, try again'),
  STATE_UNAVAILABLE: spec(157, 'state_unavailable', 503, 'the state engine (Redis) did not answer'),
  AUTH_UNAVAILABLE: spec(165, 'auth_unavailable', 503, 'the web app authenticator did not answer in time or answered badly'),
  AUTH_DENIED: spec(166, 'auth_denied', 403, 'refused by the authenticator'),
  NOT_AUTHENTICATED: spec(167, 'not_authenticated', 401, 'authenticate first'),
  BAD_FRAME: spec(168, 'bad_frame', 400, 'malformed message: expected <channel>:<json object> or !<command>:<args>'),
  SUBSCRIBER_ID_UNPROVEN: spec(169, 'subscriber_id_unproven', 401, 'the subscriber id is not proven: send a token whose user is the subscriber id'),
  NOT_CONNECTED: spec(170, 'not_connected', 401, 'send a connect message first'),
  SESSION_UNREACHABLE: spec(171, 'session_unreachable', 503, 'the edge process that holds this SockJS session is not reachable'),
  LISTEN_UNKNOWN_CONNECTION: spec(180, 'listen_unknown_connection', 401, 'long poll for a connection id the cluster does not know'),
  WAMP_NO_SUCH_PROCEDURE: spec(190, 'wamp_no_such_procedure', 404, 'no procedure is registered under this URI'),
  WAMP_PROCEDURE_EXISTS: spec(191, 'wamp_procedure_already_exists', 409, 'a procedure is already registered under this URI'),
  WAMP_NO_SUCH_REGISTRATION: spec(192, 'wamp_no_such_registration', 404, 'no such registration of this session'),
  WAMP_CANCELED: spec(193, 'wamp_canceled', 503, 'the call was canceled: its callee left before answering'),
  WAMP_CALL_TIMEOUT: spec(194, 'wamp_call_timeout', 504, 'the callee did not answer within the call timeout'),
  WAMP_INVALID_URI: spec(195, 'wamp_invalid_uri', 400, 'invalid WAMP URI'),
  OVERLOADED: spec(215, 'overloaded', 503, 'this edge is too busy to take new connections: retry after the Retry-After seconds, here or on another node'),
});

export type ErrorName = keyof typeof ErrorCodes;

const byCode = new Map<number, ErrorSpec>(Object.values(ErrorCodes).map((e) => [e.code, e]));

export function errorByCode(code: number): ErrorSpec | undefined {
  return byCode.get(code);
}

/** The JSON shape of an error in replies and API responses. */
export interface ErrorBody {
  code: number;
  name: string;
  message: string;
  /** Seconds after which the same request can succeed (136 history_limit). */
  retry_after?: number;
}

/** An error that carries its catalog entry, thrown inside the server and turned into replies. */
export class TidingsError extends Error {
  readonly spec: ErrorSpec;
  readonly detail: string;
  /** Seconds after which the request can succeed, when known. */
  retryAfter: number | undefined;
  constructor(errorSpec: ErrorSpec, detail?: string, retryAfter?: number) {
    super(detail ? `${errorSpec.message}: ${detail}` : errorSpec.message);
    this.name = 'TidingsError';
    this.spec = errorSpec;
    this.detail = detail ?? '';
    this.retryAfter = retryAfter;
  }
  get code(): number {
    return this.spec.code;
  }
  get status(): number {
    return this.spec.status;
  }
  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.spec.code, name: this.spec.name, message: this.message };
    if (this.retryAfter !== undefined) body.retry_after = this.retryAfter;
    return body;
  }
}

export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof TidingsError) return err.toBody();
  const e = ErrorCodes.INTERNAL;
  return { code: e.code, name: e.name, message: e.message };
}

export interface CloseSpec {
  readonly code: number;
  readonly name: string;
  /** Whether a client should reconnect after this close (with backoff). */
  readonly reconnect: boolean;
  readonly reason: string;
}

function close(code: number, name: string, reconnect: boolean, reason: string): CloseSpec {
  return Object.freeze({ code, name, reconnect, reason });
}

/**
 * Websocket close codes. 1000-1011 are the standard ones the server uses;
 * 4000-4999 are Tidings' own. Reasons are sent as the close frame's reason text.
 */
export const CloseCodes = Object.freeze({
  NORMAL: close(1000, 'normal', false, 'normal closure'),
  SHUTDOWN: close(1001, 'shutdown', true, 'server shutting down'),
  MESSAGE_TOO_BIG: close(1009, 'message_too_big', true, 'frame larger than the maximum message size'),
  INTERNAL: close(1011, 'internal', true, 'internal server error'),
  BAD_REQUEST: close(4000, 'bad_request', false, 'malformed frame'),
  TOKEN_INVALID: close(4001, 'token_invalid', false, 'invalid token'),
  TOKEN_EXPIRED: close(4002, 'token_expired', true, 'token expired: reconnect with a fresh token'),
  CONNECT_TIMEOUT: close(4003, 'connect_timeout', true, 'no connect command in time'),
  IDLE_TIMEOUT: close(4004, 'idle_timeout', true, 'no frame from the client within the idle timeout'),
  SLOW_CONSUMER: close(4005, 'slow_consumer', true, 'send buffer limit exceeded'),
  MESSAGE_GAP: close(4006, 'message_gap', true, 'messages were missed: reconnect and recover from the last offset'),
  DISCONNECTED: close(4007, 'disconnected', false, 'disconnected by the server API'),
  UNAVAILABLE: close(4008, 'unavailable', true, 'the director restarted or is unreachable: reconnect and recover'),
  UNSUPPORTED_PROTOCOL: close(4009, 'unsupported_protocol', false, 'unsupported subprotocol'),
  AUTH_FAILED: close(4020, 'auth_failed', false, 'authentication refused'),
  AUTH_UNAVAILABLE: close(4021, 'auth_unavailable', true, 'the authenticator did not answer: reconnect later'),
  WAMP_ABORTED: close(4035, 'wamp_aborted', false, 'WAMP session aborted: the ABORT message says why'),
});

export type CloseName = keyof typeof CloseCodes;

const closeByCode = new Map<number, CloseSpec>(Object.values(CloseCodes).map((c) => [c.code, c]));

export function closeByNumber(code: number): CloseSpec | undefined {
  return closeByCode.get(code);
}
