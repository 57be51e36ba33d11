/**
 * Seth-Pusher's debug views for the whole cluster, answered by the director:
 *   GET /debug/                    -> {"subscriber_count": n, "subscribers": {channel: [connection id, ...]}}
 *   GET /debug/channels/<channel>/ -> the same for one channel
 * Behind admin_secret (`Authorization: Bearer <admin_secret>` or `x-admin-secret`);
 * with no admin_secret set the views are off (403).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import type { EdgeServer } from '../edge/edge-server.js';
import { sendError, sendJson } from '../http/io.js';
import { requireAdmin } from '../admin/admin-auth.js';

const CHANNEL_VIEW = /^\/debug\/channels\/([^/]+)\/?$/;

export function debugFeature(edge: EdgeServer, config: Config, log: Logger): void {
  edge.addRoute((req, res, path) => {
    if (path !== '/debug' && path !== '/debug/' && !path.startsWith('/debug/')) return false;
    const m = CHANNEL_VIEW.exec(path);
    if (path !== '/debug' && path !== '/debug/' && !m) return false;
    void (async () => {
      try {
        if (req.method !== 'GET') throw new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, 'use GET');
        requireAdmin(req, config, 'debug views are');
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
