/**
 * Seth-Pusher's debug views for the whole cluster, answered by the director:
 *   GET /debug/                    -> {"subscriber_count": n, "subscribers": {channel: [connection id, ...]}}
 *   GET /debug/channels/<channel>/ -> the same for one channel
 * Behind admin_secret (`Authorization: Bearer <admin_secret>` or `x-admin-secret`);
 * with no admin_secret set the views are off (403).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import type { EdgeServer } from '../edge/edge-server.js';
import { sendError, sendJson } from '../http/io.js';
import { refused } from '../edge/refusals.js';

const CHANNEL_VIEW = /^\/debug\/channels\/([^/]+)\/?$/;

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

export function debugFeature(edge: EdgeServer, config: Config, log: Logger): void {
  edge.addRoute((req, res, path) => {
    if (path !== '/debug' && path !== '/debug/' && !path.startsWith('/debug/')) return false;
    const m = CHANNEL_VIEW.exec(path);
    if (path !== '/debug' && path !== '/debug/' && !m) return false;
    void (async () => {
      try {
        if (req.method !== 'GET') throw new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, 'use GET');
        if (!config.admin_secret) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, 'debug views are off: no admin_secret is set');
        const given = presented(req);
        if (given === null || !sameSecret(given, config.admin_secret)) throw refused(req, 'admin_secret', new TidingsError(ErrorCodes.BAD_API_KEY, 'admin secret missing or wrong'));
        let channel: string | undefined;
        if (m) {
          try {
            channel = decodeURIComponent(m[1]!);
          } catch {
            throw new TidingsError(ErrorCodes.INVALID_CHANNEL, 'bad percent-encoding');
          }
        }
        sendJson(res, 200, await edge.commands.request('debug_subscribers', channel === undefined ? {} : { channel }));
      } catch (err) {
        if (!(err instanceof TidingsError)) log.error({ err }, 'debug view failed');
        sendError(res, err);
      }
    })();
    return true;
  });
}
