/**
 * The HTTP authenticator: asks the web app (auth_url) whether a client may
 * connect, subscribe, unsubscribe or publish, so an app keeps its own rules
 * (an omnibus authenticator class, a Django session) and exposes them in a few
 * lines. One POST per question with a JSON body; the app answers
 * `{"allow": true|false, "user"?: string|null, "ttl"?: seconds, "reason"?: string}`
 * with status 200. Anything else — a timeout, another status, a body that is
 * not that shape — refuses the action with `auth_unavailable` (165): the
 * authenticator fails closed. Answers are cached per question for
 * auth_cache_ttl (or the answer's `ttl`) in a bounded LRU map, and concurrent
 * identical questions share one request. Requests are signed when `secret` is
 * set: `X-Tidings-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
 * docs/authenticators.md documents the shapes with a worked Django example.
 */
import { createHmac } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { isValidUser } from '../protocol/names.js';

export type AuthAction = 'connect' | 'subscribe' | 'unsubscribe' | 'publish';
export type AuthProtocol = 'omnibus' | 'sethpusher' | 'native';

/** What the app is told about the client; headers are only the ones that carry credentials or origin. */
export interface AuthQuestion {
  action: AuthAction;
  protocol: AuthProtocol;
  /** Channel of subscribe, unsubscribe and publish. */
  channel?: string;
  /** The user the app named on connect (null: anonymous). */
  user?: string | null;
  /** omnibus: the arguments of `!authenticate:<args>` (`<identifier>[:<user_id>:<token>]`). */
  args?: string;
  /** omnibus: the connection identifier. */
  identifier?: string;
  /** Seth-Pusher: the claimed subscriber id. */
  subscriber_id?: string;
  /** A token the client sent, if any. */
  token?: string;
  headers?: Record<string, string>;
  remote_addr?: string | null;
}

export interface AuthAnswer {
  allow: boolean;
  user: string | null;
  reason: string | null;
}

export interface HttpAuthenticatorOptions {
  url: string;
  timeoutMs: number;
  cacheTtlMs: number;
  cacheSize: number;
  /** Signs each request body when set. */
  secret: string | null;
}

/** Request headers passed on to the app: credentials and where the client comes from. */
const FORWARDED_HEADERS = ['cookie', 'authorization', 'origin', 'referer', 'user-agent', 'x-forwarded-for', 'x-real-ip', 'host'];

/** The headers of a client's request that the app may use to recognise it. */
export function credentialHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of FORWARDED_HEADERS) {
    const v = headers[h];
    if (typeof v === 'string') out[h] = v.slice(0, 8192);
  }
  return out;
}

/** Largest answer body read from the app. */
const MAX_ANSWER = 16 * 1024;

interface CacheEntry {
  answer: AuthAnswer;
  expires: number;
}

/** Parse the app's answer; throws auth_unavailable for anything but the documented shape. */
export function parseAuthAnswer(status: number, body: string): { answer: AuthAnswer; ttl: number | null } {
  if (status !== 200) throw new TidingsError(ErrorCodes.AUTH_UNAVAILABLE, `auth_url answered HTTP ${status}`);
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    throw new TidingsError(ErrorCodes.AUTH_UNAVAILABLE, 'auth_url answer is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TidingsError(ErrorCodes.AUTH_UNAVAILABLE, 'auth_url answer must be a JSON object');
  const o = v as Record<string, unknown>;
  if (typeof o['allow'] !== 'boolean') throw new TidingsError(ErrorCodes.AUTH_UNAVAILABLE, 'auth_url answer needs "allow": true or false');
  const user = o['user'] ?? null;
  if (user !== null && !isValidUser(user)) throw new TidingsError(ErrorCodes.AUTH_UNAVAILABLE, 'auth_url answer: "user" must be a user id or null');
  const ttl = o['ttl'];
  if (ttl !== undefined && (typeof ttl !== 'number' || !(ttl >= 0) || ttl > 86400)) throw new TidingsError(ErrorCodes.AUTH_UNAVAILABLE, 'auth_url answer: "ttl" must be 0-86400 seconds');
  const reason = typeof o['reason'] === 'string' ? o['reason'].slice(0, 200) : null;
  return { answer: { allow: o['allow'], user: user as string | null, reason }, ttl: typeof ttl === 'number' ? ttl : null };
}

export class HttpAuthenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inFlight = new Map<string, Promise<AuthAnswer>>();
  private readonly target: URL;
  /** Requests made to the app (for tests and metrics). */
  requests = 0;

  constructor(private readonly opts: HttpAuthenticatorOptions) {
    this.target = new URL(opts.url);
  }

  /** Ask the app; resolves with its answer (allow or deny), rejects with auth_unavailable. */
  ask(q: AuthQuestion): Promise<AuthAnswer> {
    const body = JSON.stringify(q);
    const now = Date.now();
    const hit = this.cache.get(body);
    if (hit) {
      this.cache.delete(body);
      if (hit.expires > now) {
        this.cache.set(body, hit); // most recently used last
        return Promise.resolve(hit.answer);
      }
    }
    const running = this.inFlight.get(body);
    if (running) return running;
    const p = this.post(body).then(
      ({ answer, ttl }) => {
        this.inFlight.delete(body);
        const ms = ttl === null ? this.opts.cacheTtlMs : ttl * 1000;
        if (ms > 0 && this.opts.cacheSize > 0) this.remember(body, { answer, expires: Date.now() + ms });
        return answer;
      },
      (err: unknown) => {
        this.inFlight.delete(body);
        throw err;
      },
    );
    this.inFlight.set(body, p);
    return p;
  }

  /** Ask and throw auth_denied unless allowed; returns the answer. */
  async require(q: AuthQuestion): Promise<AuthAnswer> {
    const a = await this.ask(q);
    if (!a.allow) throw new TidingsError(ErrorCodes.AUTH_DENIED, a.reason ?? `${q.action}${q.channel !== undefined ? ` ${q.channel}` : ''} refused by auth_url`);
    return a;
  }

  private remember(key: string, entry: CacheEntry): void {
    this.cache.set(key, entry);
    while (this.cache.size > this.opts.cacheSize) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  private post(body: string): Promise<{ answer: AuthAnswer; ttl: number | null }> {
    this.requests++;
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      accept: 'application/json',
    };
    if (this.opts.secret) headers['x-tidings-signature'] = `sha256=${createHmac('sha256', this.opts.secret).update(body).digest('hex')}`;
    const send = this.target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (err: TidingsError | null, value?: { answer: AuthAnswer; ttl: number | null }): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value!);
      };
      const req = send(this.target, { method: 'POST', headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER) {
            req.destroy();
            done(new TidingsError(ErrorCodes.AUTH_UNAVAILABLE, 'auth_url answer too large'));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          try {
            done(null, parseAuthAnswer(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
          } catch (err) {
            done(err as TidingsError);
          }
        });
        res.on('error', () => done(new TidingsError(ErrorCodes.AUTH_UNAVAILABLE, 'auth_url answer broken off')));
      });
      const timer = setTimeout(() => {
        req.destroy();
        done(new TidingsError(ErrorCodes.AUTH_UNAVAILABLE, `auth_url did not answer within ${this.opts.timeoutMs} ms`));
      }, this.opts.timeoutMs);
      req.on('error', (err) => done(new TidingsError(ErrorCodes.AUTH_UNAVAILABLE, `auth_url unreachable: ${err.message}`)));
      req.end(body);
    });
  }
}
