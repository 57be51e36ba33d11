/**
 * WAMP v2 message codes, URIs and the validation of what a client sends.
 * A message is an array whose first element is its type code; anything that
 * does not have the shape the spec gives is a protocol violation. Pure: no
 * Node imports.
 */

export const enum Msg {
  HELLO = 1,
  WELCOME = 2,
  ABORT = 3,
  CHALLENGE = 4,
  AUTHENTICATE = 5,
  GOODBYE = 6,
  ERROR = 8,
  PUBLISH = 16,
  PUBLISHED = 17,
  SUBSCRIBE = 32,
  SUBSCRIBED = 33,
  UNSUBSCRIBE = 34,
  UNSUBSCRIBED = 35,
  EVENT = 36,
  CALL = 48,
  CANCEL = 49,
  RESULT = 50,
  REGISTER = 64,
  REGISTERED = 65,
  UNREGISTER = 66,
  UNREGISTERED = 67,
  INVOCATION = 68,
  INTERRUPT = 69,
  YIELD = 70,
}

export const SUBPROTOCOL_WAMP_JSON = 'wamp.2.json';
export const SUBPROTOCOL_WAMP_MSGPACK = 'wamp.2.msgpack';
export type Serializer = 'json' | 'msgpack';

export function serializerOf(subprotocol: string): Serializer | null {
  if (subprotocol === SUBPROTOCOL_WAMP_JSON) return 'json';
  if (subprotocol === SUBPROTOCOL_WAMP_MSGPACK) return 'msgpack';
  return null;
}

/** Standard URIs (basic and advanced profile) Tidings sends. */
export const Uri = Object.freeze({
  INVALID_URI: 'wamp.error.invalid_uri',
  NO_SUCH_PROCEDURE: 'wamp.error.no_such_procedure',
  PROCEDURE_ALREADY_EXISTS: 'wamp.error.procedure_already_exists',
  NO_SUCH_REGISTRATION: 'wamp.error.no_such_registration',
  NO_SUCH_SUBSCRIPTION: 'wamp.error.no_such_subscription',
  INVALID_ARGUMENT: 'wamp.error.invalid_argument',
  CANCELED: 'wamp.error.canceled',
  TIMEOUT: 'wamp.error.timeout',
  PAYLOAD_SIZE_EXCEEDED: 'wamp.error.payload_size_exceeded',
  NOT_AUTHORIZED: 'wamp.error.not_authorized',
  NETWORK_FAILURE: 'wamp.error.network_failure',
  OPTION_NOT_ALLOWED: 'wamp.error.option_not_allowed',
  PROTOCOL_VIOLATION: 'wamp.error.protocol_violation',
  NO_SUCH_REALM: 'wamp.error.no_such_realm',
  NO_MATCHING_AUTH_METHOD: 'wamp.error.no_matching_auth_method',
  AUTHENTICATION_DENIED: 'wamp.error.authentication_denied',
  SYSTEM_SHUTDOWN: 'wamp.close.system_shutdown',
  CLOSE_REALM: 'wamp.close.close_realm',
  GOODBYE_AND_OUT: 'wamp.close.goodbye_and_out',
  KILLED: 'wamp.close.killed',
  /** Tidings' own: a limit of the router (subscriptions, calls in flight, ...). */
  LIMIT_EXCEEDED: 'tidings.error.limit_exceeded',
  /** Tidings' own GOODBYE reason when the ticket's token expires. */
  TOKEN_EXPIRED: 'tidings.close.token_expired',
});

/** IDs are integers in [1, 2^53]. */
export const MAX_ID = 2 ** 53;

export class ProtocolViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolViolation';
  }
}

export type Dict = Record<string, unknown>;

export type ClientMessage =
  | { type: Msg.HELLO; realm: string; details: Dict }
  | { type: Msg.AUTHENTICATE; signature: string; extra: Dict }
  | { type: Msg.ABORT; details: Dict; reason: string }
  | { type: Msg.GOODBYE; details: Dict; reason: string }
  | { type: Msg.ERROR; requestType: number; request: number; details: Dict; error: string; args?: unknown[]; kwargs?: Dict }
  | { type: Msg.PUBLISH; request: number; options: Dict; topic: string; args?: unknown[]; kwargs?: Dict }
  | { type: Msg.SUBSCRIBE; request: number; options: Dict; topic: string }
  | { type: Msg.UNSUBSCRIBE; request: number; subscription: number }
  | { type: Msg.CALL; request: number; options: Dict; procedure: string; args?: unknown[]; kwargs?: Dict }
  | { type: Msg.CANCEL; request: number; options: Dict }
  | { type: Msg.REGISTER; request: number; options: Dict; procedure: string }
  | { type: Msg.UNREGISTER; request: number; registration: number }
  | { type: Msg.YIELD; request: number; options: Dict; args?: unknown[]; kwargs?: Dict };

export function isDict(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

export function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_ID;
}

const NAMES: Record<number, string> = {
  1: 'HELLO', 2: 'WELCOME', 3: 'ABORT', 4: 'CHALLENGE', 5: 'AUTHENTICATE', 6: 'GOODBYE', 8: 'ERROR',
  16: 'PUBLISH', 17: 'PUBLISHED', 32: 'SUBSCRIBE', 33: 'SUBSCRIBED', 34: 'UNSUBSCRIBE', 35: 'UNSUBSCRIBED', 36: 'EVENT',
  48: 'CALL', 49: 'CANCEL', 50: 'RESULT', 64: 'REGISTER', 65: 'REGISTERED', 66: 'UNREGISTER', 67: 'UNREGISTERED',
  68: 'INVOCATION', 69: 'INTERRUPT', 70: 'YIELD',
};

export function messageName(code: number): string {
  return NAMES[code] ?? `message type ${code}`;
}

/** Shape checks by position; `a` is the array, `name` for messages. */
class Reader {
  constructor(
    private readonly a: unknown[],
    private readonly name: string,
  ) {}
  id(i: number, what: string): number {
    const v = this.a[i];
    if (!isId(v)) throw new ProtocolViolation(`${this.name}.${what} must be an integer ID in [1, 2^53]`);
    return v;
  }
  int(i: number, what: string): number {
    const v = this.a[i];
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ProtocolViolation(`${this.name}.${what} must be an integer`);
    return v;
  }
  dict(i: number, what: string): Dict {
    const v = this.a[i];
    if (!isDict(v)) throw new ProtocolViolation(`${this.name}.${what} must be a dictionary`);
    return v;
  }
  str(i: number, what: string): string {
    const v = this.a[i];
    if (typeof v !== 'string') throw new ProtocolViolation(`${this.name}.${what} must be a string`);
    return v;
  }
  /** Arguments|list and ArgumentsKw|dict at positions i, i+1, both optional. */
  payload(i: number): { args?: unknown[]; kwargs?: Dict } {
    const out: { args?: unknown[]; kwargs?: Dict } = {};
    if (this.a.length > i) {
      if (!Array.isArray(this.a[i])) throw new ProtocolViolation(`${this.name}.Arguments must be a list`);
      out.args = this.a[i] as unknown[];
    }
    if (this.a.length > i + 1) out.kwargs = this.dict(i + 1, 'ArgumentsKw');
    return out;
  }
  length(min: number, max: number): void {
    if (this.a.length < min || this.a.length > max) {
      throw new ProtocolViolation(`${this.name} must have ${min === max ? min : `${min} to ${max}`} elements, got ${this.a.length}`);
    }
  }
}

/** Validate one decoded client message. Throws ProtocolViolation. */
export function parseClientMessage(raw: unknown): ClientMessage {
  if (!Array.isArray(raw) || raw.length === 0) throw new ProtocolViolation('a WAMP message must be a non-empty list');
  const code = raw[0];
  if (typeof code !== 'number' || !Number.isInteger(code)) throw new ProtocolViolation('the first element of a WAMP message must be its type code');
  const r = new Reader(raw, messageName(code));
  switch (code) {
    case Msg.HELLO:
      r.length(3, 3);
      return { type: Msg.HELLO, realm: r.str(1, 'Realm'), details: r.dict(2, 'Details') };
    case Msg.AUTHENTICATE:
      r.length(3, 3);
      return { type: Msg.AUTHENTICATE, signature: r.str(1, 'Signature'), extra: r.dict(2, 'Extra') };
    case Msg.ABORT:
      r.length(3, 5);
      return { type: Msg.ABORT, details: r.dict(1, 'Details'), reason: r.str(2, 'Reason') };
    case Msg.GOODBYE:
      r.length(3, 3);
      return { type: Msg.GOODBYE, details: r.dict(1, 'Details'), reason: r.str(2, 'Reason') };
    case Msg.ERROR:
      r.length(5, 7);
      return { type: Msg.ERROR, requestType: r.int(1, 'REQUEST.Type'), request: r.id(2, 'REQUEST.Request'), details: r.dict(3, 'Details'), error: r.str(4, 'Error'), ...r.payload(5) };
    case Msg.PUBLISH:
      r.length(4, 6);
      return { type: Msg.PUBLISH, request: r.id(1, 'Request'), options: r.dict(2, 'Options'), topic: r.str(3, 'Topic'), ...r.payload(4) };
    case Msg.SUBSCRIBE:
      r.length(4, 4);
      return { type: Msg.SUBSCRIBE, request: r.id(1, 'Request'), options: r.dict(2, 'Options'), topic: r.str(3, 'Topic') };
    case Msg.UNSUBSCRIBE:
      r.length(3, 3);
      return { type: Msg.UNSUBSCRIBE, request: r.id(1, 'Request'), subscription: r.id(2, 'SUBSCRIBED.Subscription') };
    case Msg.CALL:
      r.length(4, 6);
      return { type: Msg.CALL, request: r.id(1, 'Request'), options: r.dict(2, 'Options'), procedure: r.str(3, 'Procedure'), ...r.payload(4) };
    case Msg.CANCEL:
      r.length(3, 3);
      return { type: Msg.CANCEL, request: r.id(1, 'CALL.Request'), options: r.dict(2, 'Options') };
    case Msg.REGISTER:
      r.length(4, 4);
      return { type: Msg.REGISTER, request: r.id(1, 'Request'), options: r.dict(2, 'Options'), procedure: r.str(3, 'Procedure') };
    case Msg.UNREGISTER:
      r.length(3, 3);
      return { type: Msg.UNREGISTER, request: r.id(1, 'Request'), registration: r.id(2, 'REGISTERED.Registration') };
    case Msg.YIELD:
      r.length(3, 5);
      return { type: Msg.YIELD, request: r.id(1, 'INVOCATION.Request'), options: r.dict(2, 'Options'), ...r.payload(3) };
    default:
      if (code in NAMES) throw new ProtocolViolation(`${messageName(code)} is a message a router sends, never receives`);
      throw new ProtocolViolation(`unknown message type ${code}`);
  }
}

/** A message to send: [code, ...fields], with empty trailing args/kwargs left out as the spec asks. */
export function withPayload(head: unknown[], args: unknown[] | undefined, kwargs: Dict | undefined): unknown[] {
  const hasKw = kwargs !== undefined && Object.keys(kwargs).length > 0;
  const hasArgs = args !== undefined && args.length > 0;
  if (hasKw) return [...head, args ?? [], kwargs];
  if (hasArgs) return [...head, args];
  return head;
}

/**
 * Loose URI rules of the spec (components non-empty, without `.`, `#` or
 * whitespace). `wamp.` is reserved for the protocol.
 */
const LOOSE_URI_RE = /^([^\s.#]+\.)*([^\s.#]+)$/;

export function uriProblem(uri: string): string | undefined {
  if (uri.length === 0) return 'a URI must not be empty';
  if (!LOOSE_URI_RE.test(uri)) return 'URI components must be non-empty and hold no ".", "#" or whitespace';
  return undefined;
}

export function isReservedUri(uri: string): boolean {
  return uri === 'wamp' || uri.startsWith('wamp.');
}
