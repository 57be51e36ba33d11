/**
 * The admin secret check shared by the admin page's API and the debug views:
 * `Authorization: Bearer <admin_secret>` or `x-admin-secret`, compared in
 * constant time; with no admin_secret set both are off (403).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { refused } from '../edge/refusals.js';

function presented(req: IncomingMessage): string | null {
  const auth = req.headers['authorization'];
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1]!;
  }
  const h = req.headers['x-admin-secret'];
  return typeof h === 'string' && h.length > 0 ? h : null;
}

function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** Throws 403 (no admin_secret set) or 401 code 117 (missing or wrong secret, counted and logged). */
export function requireAdmin(req: IncomingMessage, config: Config, what: string): void {
  if (!config.admin_secret) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `${what} off: no admin_secret is set`);
  const given = presented(req);
  if (given === null || !sameSecret(given, config.admin_secret)) throw refused(req, 'admin_secret', new TidingsError(ErrorCodes.BAD_API_KEY, 'admin secret missing or wrong'));
}
