/**
 * Client authentication: a JWT signed with HS256 (token_secret) carrying the
 * user id (`sub`), expiry (`exp`) and channel grants, or anonymous access when
 * allow_anonymous is set.
 */
import { jwtVerify, errors as joseErrors } from 'jose';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { isValidGrant, isValidUser } from '../protocol/names.js';

export interface Identity {
  user: string | null;
  subscribe: readonly string[];
  publish: readonly string[];
  presence: readonly string[];
  history: readonly string[];
  /** WAMP procedures the user may call and register (grants.call, grants.register; none by default). */
  call: readonly string[];
  register: readonly string[];
  /** Expiry in unix seconds, or null. */
  expires: number | null;
}

export interface AuthOptions {
  tokenSecret: string | null;
  allowAnonymous: boolean;
  anonymousChannels: readonly string[];
}

function grantList(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > 1000 || !value.every(isValidGrant)) {
    throw new TidingsError(ErrorCodes.TOKEN_INVALID, `grants.${what} must be a list of channel names or patterns`);
  }
  return value as string[];
}

export class Authenticator {
  private readonly key: Uint8Array | null;

  constructor(private readonly opts: AuthOptions) {
    this.key = opts.tokenSecret ? new TextEncoder().encode(opts.tokenSecret) : null;
  }

  async authenticate(token: string | undefined): Promise<Identity> {
    if (token === undefined || token === '') {
      if (!this.opts.allowAnonymous) throw new TidingsError(ErrorCodes.TOKEN_INVALID, 'a token is required');
      const g = this.opts.anonymousChannels;
      return { user: null, subscribe: g, publish: [], presence: g, history: g, call: [], register: [], expires: null };
    }
    if (!this.key) throw new TidingsError(ErrorCodes.TOKEN_INVALID, 'tokens are not accepted: no token_secret is set');
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'], clockTolerance: 5 }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new TidingsError(ErrorCodes.TOKEN_EXPIRED);
      throw new TidingsError(ErrorCodes.TOKEN_INVALID, (err as Error).message);
    }
    const sub = payload['sub'];
    if (!isValidUser(sub)) throw new TidingsError(ErrorCodes.TOKEN_INVALID, 'sub must be a user id');
    const grants = (payload['grants'] ?? {}) as Record<string, unknown>;
    if (typeof grants !== 'object' || grants === null || Array.isArray(grants)) {
      throw new TidingsError(ErrorCodes.TOKEN_INVALID, 'grants must be an object');
    }
    const exp = typeof payload['exp'] === 'number' ? payload['exp'] : null;
    return {
      user: sub,
      subscribe: grantList(grants['subscribe'], 'subscribe'),
      publish: grantList(grants['publish'], 'publish'),
      presence: grantList(grants['presence'] ?? grants['subscribe'], 'presence'),
      history: grantList(grants['history'] ?? grants['subscribe'], 'history'),
      call: grantList(grants['call'], 'call'),
      register: grantList(grants['register'], 'register'),
      expires: exp,
    };
  }
}
