/**
 * omnibus' authenticators, by the names its AUTHENTICATOR_FACTORY setting
 * used, plus the HTTP authenticator that asks the web app:
 *
 * - noop: everyone may subscribe, unsubscribe and publish (development only;
 *   the configuration refuses it unless allow_anonymous is on);
 * - user: `!authenticate:<identifier>:<user_id>:<token>` where the token is
 *   the hex HMAC-SHA1 of the user id keyed by Django's SECRET_KEY
 *   (django_secret_key): that user may subscribe and unsubscribe. omnibus also
 *   let staff publish, which needs the user table: use the http authenticator
 *   with omnibus' own class for that (docs/authenticators.md). An identifier
 *   alone authenticates anonymously, and an anonymous connection may do nothing;
 * - http: every question goes to auth_url, with the `<args>` of
 *   `!authenticate` so the app can run its existing authenticator class.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { RequestInfo } from '../auth/authenticator.js';
import type { HttpAuthenticator } from '../auth/http-authenticator.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { isValidUser } from '../protocol/names.js';

/** A connection's authentication: who it is, and what it may do (each check throws when refused). */
export interface OmnibusAuth {
  /** The identifier the client chose (the first part of the args); its messages carry it as `sender`. */
  readonly identifier: string;
  /** The proven user, or null when anonymous. */
  readonly user: string | null;
  canSubscribe(channel: string): Promise<void>;
  canUnsubscribe(channel: string): Promise<void>;
  canPublish(channel: string): Promise<void>;
}

export interface OmnibusAuthenticator {
  /** Resolves with the connection's authentication; rejects (auth_denied, auth_unavailable) when refused. */
  authenticate(args: string, request: RequestInfo): Promise<OmnibusAuth>;
}

const MAX_ARGS = 1024;

function identifierOf(args: string): string {
  const colon = args.indexOf(':');
  const id = colon === -1 ? args : args.slice(0, colon);
  if (!isValidUser(id)) throw new TidingsError(ErrorCodes.AUTH_DENIED, 'the identifier must be 1-200 characters without control characters');
  return id;
}

function checkArgs(args: string): void {
  if (args.length > MAX_ARGS) throw new TidingsError(ErrorCodes.AUTH_DENIED, `authenticate arguments longer than ${MAX_ARGS} characters`);
}

const allowed = (): Promise<void> => Promise.resolve();

export class NoopAuthenticator implements OmnibusAuthenticator {
  async authenticate(args: string): Promise<OmnibusAuth> {
    checkArgs(args);
    return { identifier: identifierOf(args), user: null, canSubscribe: allowed, canUnsubscribe: allowed, canPublish: allowed };
  }
}

/** omnibus' token for a user id: hex HMAC-SHA1 keyed by the Django SECRET_KEY. */
export function omnibusUserToken(secretKey: string, userId: string): string {
  return createHmac('sha1', secretKey).update(userId).digest('hex');
}

export class UserAuthenticator implements OmnibusAuthenticator {
  constructor(private readonly secretKey: string) {}

  async authenticate(args: string): Promise<OmnibusAuth> {
    checkArgs(args);
    const identifier = identifierOf(args);
    if (!args.includes(':')) {
      const anonymous = (): Promise<void> => Promise.reject(new TidingsError(ErrorCodes.NOT_AUTHENTICATED, 'anonymous connections may not do that: authenticate with <identifier>:<user_id>:<token>'));
      return { identifier, user: null, canSubscribe: anonymous, canUnsubscribe: anonymous, canPublish: anonymous };
    }
    const parts = args.split(':');
    if (parts.length !== 3) throw new TidingsError(ErrorCodes.AUTH_DENIED, 'expected <identifier>:<user_id>:<token>');
    const [, userId, token] = parts as [string, string, string];
    if (!isValidUser(userId)) throw new TidingsError(ErrorCodes.AUTH_DENIED, 'bad user id');
    const expected = Buffer.from(omnibusUserToken(this.secretKey, userId), 'utf8');
    const given = Buffer.from(token, 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new TidingsError(ErrorCodes.AUTH_DENIED, 'bad token for this user');
    const staffOnly = (): Promise<void> =>
      Promise.reject(new TidingsError(ErrorCodes.PERMISSION_DENIED, "the user authenticator lets only staff publish, and staff is known to the web app only: use omnibus_authenticator http"));
    return { identifier, user: userId, canSubscribe: allowed, canUnsubscribe: allowed, canPublish: staffOnly };
  }
}

export class HttpOmnibusAuthenticator implements OmnibusAuthenticator {
  constructor(private readonly http: HttpAuthenticator) {}

  async authenticate(args: string, request: RequestInfo): Promise<OmnibusAuth> {
    checkArgs(args);
    const identifier = identifierOf(args);
    const base = { protocol: 'omnibus' as const, args, identifier, headers: request.headers, remote_addr: request.remoteAddress };
    const answer = await this.http.require({ action: 'connect', ...base });
    const user = answer.user;
    const ask = (action: 'subscribe' | 'unsubscribe' | 'publish') => async (channel: string): Promise<void> => {
      await this.http.require({ action, channel, user, ...base });
    };
    return { identifier, user, canSubscribe: ask('subscribe'), canUnsubscribe: ask('unsubscribe'), canPublish: ask('publish') };
  }
}
