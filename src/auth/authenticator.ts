/**
 * Client authentication: a JWT signed with HS256 (token_secret) carrying the
 * user id (`sub`), expiry (`exp`) and channel grants, or anonymous access when
 * allow_anonymous is set. With auth_native, a client that sends no token is
 * authenticated by the web app's HTTP authenticator instead, which then also
 * allows each subscribe and publish (Centrifugo's connect and subscribe proxies).
 */
import { Hs256Verifier, TokenExpired } from './hs256.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { isValidGrant, isValidUser } from '../protocol/names.js';
import type { HttpAuthenticator } from './http-authenticator.js';

/** What the server knows of the request that opened a connection. */
export interface RequestInfo {
  headers: Record<string, string>;
  remoteAddress: string | null;
}

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
  /** Asks the web app before each subscribe or publish (auth_native); throws when refused. */
  check?: (action: 'subscribe' | 'publish', channel: string) => Promise<void>;
}

export interface AuthOptions {
  tokenSecret: string | null;
  allowAnonymous: boolean;
  anonymousChannels: readonly string[];
  /**
   * Longest life of a token in seconds (token_max_lifetime): a token must
   * carry `exp`, and is good for at most this long after its `iat` (after
   * now when it has none). 0: no limit, tokens without `exp` never expire.
   */
  maxLifetimeS: number;
  /** Unix seconds, for tests. */
  now?: () => number;
  /** The web app's authenticator, asked for native clients without a token. */
  http?: HttpAuthenticator | null;
}

/** Seconds of clock skew allowed between the token's issuer and this server (exp, nbf). */
const CLOCK_TOLERANCE_S = 5;

/** One shared list for every absent grant: most tokens grant no publish, call or register. */
const NO_GRANTS: readonly string[] = Object.freeze([]);

function grantList(value: unknown, what: string): readonly string[] {
  if (value === undefined) return NO_GRANTS;
  if (!Array.isArray(value) || value.length > 1000 || !value.every(isValidGrant)) {
    throw new TidingsError(ErrorCodes.TOKEN_INVALID, `grants.${what} must be a list of channel names or patterns`);
  }
  return value as readonly string[];
}

export class Authenticator {
  /** The token secret's HMAC key, made once (hs256.ts: verified synchronously, not through WebCrypto). */
  private readonly verifier: Hs256Verifier | null;

  constructor(private readonly opts: AuthOptions) {
    this.verifier = opts.tokenSecret ? new Hs256Verifier(opts.tokenSecret) : null;
  }

  /** Whether authenticate() looks at the request (auth_native: the web app is asked about clients without a token). */
  get usesRequest(): boolean {
    return this.opts.http != null;
  }

  async authenticate(token: string | undefined, request: RequestInfo | null = null): Promise<Identity> {
    const http = this.opts.http;
    // Only connections that pass their request (the native protocol's) are asked about; others keep tokens and anonymity.
    if ((token === undefined || token === '') && http && request !== null) {
      const base = { protocol: 'native' as const, headers: request?.headers ?? {}, remote_addr: request?.remoteAddress ?? null };
      const answer = await http.ask({ action: 'connect', ...base });
      if (!answer.allow) throw new TidingsError(ErrorCodes.AUTH_DENIED, answer.reason ?? 'connect refused by auth_url');
      const user = answer.user;
      const all = ['*'];
      return {
        user,
        subscribe: all,
        publish: all,
        presence: all,
        history: all,
        call: [],
        register: [],
        expires: null,
        check: async (action, channel) => {
          await http.require({ action, channel, user, ...base });
        },
      };
    }
    if (token === undefined || token === '') {
      if (!this.opts.allowAnonymous) throw new TidingsError(ErrorCodes.TOKEN_INVALID, 'a token is required');
      const g = this.opts.anonymousChannels;
      return { user: null, subscribe: g, publish: [], presence: g, history: g, call: [], register: [], expires: null };
    }
    if (!this.verifier) throw new TidingsError(ErrorCodes.TOKEN_INVALID, 'tokens are not accepted: no token_secret is set');
    let payload: Record<string, unknown>;
    try {
      // Signature and exp/nbf against the real clock (opts.now serves token_max_lifetime only).
      payload = this.verifier.verify(token, Math.floor(Date.now() / 1000), CLOCK_TOLERANCE_S);
    } catch (err) {
      if (err instanceof TokenExpired) throw new TidingsError(ErrorCodes.TOKEN_EXPIRED);
      throw new TidingsError(ErrorCodes.TOKEN_INVALID, (err as Error).message);
    }
    const sub = payload['sub'];
    if (!isValidUser(sub)) throw new TidingsError(ErrorCodes.TOKEN_INVALID, 'sub must be a user id');
    const grants = (payload['grants'] ?? {}) as Record<string, unknown>;
    if (typeof grants !== 'object' || grants === null || Array.isArray(grants)) {
      throw new TidingsError(ErrorCodes.TOKEN_INVALID, 'grants must be an object');
    }
    const exp = this.expiry(payload);
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

  /** When the identity stops being valid (unix seconds), or null for never; throws for a token that may not be used. */
  private expiry(payload: Record<string, unknown>): number | null {
    const exp = typeof payload['exp'] === 'number' ? payload['exp'] : null;
    const max = this.opts.maxLifetimeS;
    if (max <= 0) return exp;
    if (exp === null) throw new TidingsError(ErrorCodes.TOKEN_INVALID, 'the token has no exp (tokens must expire: token_max_lifetime)');
    const now = this.opts.now?.() ?? Math.floor(Date.now() / 1000);
    const from = typeof payload['iat'] === 'number' ? Math.min(payload['iat'], now) : now;
    const capped = Math.min(exp, Math.floor(from + max));
    if (capped <= now) throw new TidingsError(ErrorCodes.TOKEN_EXPIRED, `issued more than token_max_lifetime (${max} s) ago`);
    return capped;
  }
}
