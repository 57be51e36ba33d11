/** API-key authentication for the HTTP API: `Authorization: Bearer <key>` or `X-Api-Key: <key>`. */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { sourceAddress } from '../http/io.js';
import { refused } from '../edge/refusals.js';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export class ApiKeys {
  private readonly digests: Buffer[];
  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  get configured(): boolean {
    return this.digests.length > 0;
  }

  /** The key the request presents, or null. */
  static presented(req: IncomingMessage): string | null {
    const auth = req.headers['authorization'];
    if (typeof auth === 'string') {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (m) return m[1]!;
    }
    const h = req.headers['x-api-key'];
    if (typeof h === 'string' && h.length > 0) return h;
    return null;
  }

  /** Constant-time check against every configured key. */
  check(key: string | null): boolean {
    if (key === null) return false;
    const d = digest(key);
    let ok = false;
    for (const k of this.digests) ok = timingSafeEqual(k, d) || ok;
    return ok;
  }
}

/**
 * The check every server API route makes: the source address is in
 * allow_posting_from (when set) and the request presents a configured key.
 * Throws FORBIDDEN_SOURCE or BAD_API_KEY.
 */
export class ApiGuard {
  private readonly keys: ApiKeys;

  constructor(
    keys: readonly string[],
    private readonly allowedSources: readonly string[],
  ) {
    this.keys = new ApiKeys(keys);
  }

  authorize(req: IncomingMessage): void {
    if (this.allowedSources.length > 0 && !this.allowedSources.includes(sourceAddress(req))) {
      throw refused(req, 'api_key', new TidingsError(ErrorCodes.FORBIDDEN_SOURCE, sourceAddress(req)));
    }
    if (!this.keys.configured) throw refused(req, 'api_key', new TidingsError(ErrorCodes.BAD_API_KEY, 'no API keys are configured (api_keys)'));
    const key = ApiKeys.presented(req);
    if (!this.keys.check(key)) throw refused(req, 'api_key', new TidingsError(ErrorCodes.BAD_API_KEY, key === null ? 'no key given (Authorization: Bearer <key> or X-Api-Key)' : 'the key given is not in api_keys'));
  }
}
