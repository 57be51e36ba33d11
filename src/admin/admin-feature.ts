/**
 * The admin page (Centrifugo, channelstream and socket.io have one), on
 * every node, behind admin_secret:
 *   GET  <base>/admin                     the page (dist/admin/), which asks for the secret
 *   GET  <base>/admin/api/overview        nodes and health, connections per node, channels, rates
 *   POST <base>/admin/api/publish         {channel, data}   -> {channel, offset, epoch} (sender "admin")
 *   POST <base>/admin/api/disconnect      {user} | {conn_id} -> {disconnected: [conn_id...]}
 * The API answers with the director's commands (admin_overview, publish,
 * conn_disconnect). Websocket edges report their numbers to the director
 * every REPORT_INTERVAL_MS (admin_report) so the page can list them.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import type { EdgeFeature } from '../edge/features.js';
import type { EdgeServer } from '../edge/edge-server.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { channelProblem, isValidUser } from '../protocol/names.js';
import { readJson, sendError, sendJson } from '../http/io.js';
import { AssetFiles } from '../demo/assets.js';
import { requireAdmin } from './admin-auth.js';
import { REPORT_INTERVAL_MS } from './director-admin.js';

const FILES = {
  '/admin': 'admin/index.html',
  '/admin/': 'admin/index.html',
  '/admin/admin.js': 'admin/admin.js',
  '/admin/admin.css': 'admin/admin.css',
};

export const adminFeature: EdgeFeature = (edge, config, log) => {
  const files = new AssetFiles(FILES);
  const adminLog = log.child({ component: 'admin' });
  edge.addRoute((req, res, path, url) => {
    if (path === '/admin' && !url.pathname.endsWith('/')) {
      // /admin -> /admin/ so the page's relative URLs resolve under it.
      res.writeHead(301, { location: `${config.server_base_url}/admin/` }).end();
      return true;
    }
    if (files.has(path)) {
      files.serve(path, req.method, res);
      return true;
    }
    if (!path.startsWith('/admin/api/')) return false;
    void (async () => {
      try {
        requireAdmin(req, config, 'the admin page is');
        sendJson(res, 200, await answer(edge, config, path, req.method ?? 'GET', () => readJson(req, config.max_message_size), adminLog));
      } catch (err) {
        if (!(err instanceof TidingsError)) adminLog.error({ err }, 'admin request failed');
        sendError(res, err);
      }
    })();
    return true;
  });
  if (edge.websocketEnabled) startReports(edge, adminLog);
};

async function answer(edge: EdgeServer, config: Config, path: string, method: string, body: () => Promise<unknown>, log: Logger): Promise<unknown> {
  const post = async (): Promise<Record<string, unknown>> => {
    if (method !== 'POST') throw new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, 'use POST');
    const b = await body();
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'body must be a JSON object');
    return b as Record<string, unknown>;
  };
  switch (path) {
    case '/admin/api/overview':
      if (method !== 'GET') throw new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, 'use GET');
      return edge.commands.request('admin_overview', {});
    case '/admin/api/publish': {
      const b = await post();
      const problem = channelProblem(b['channel']);
      if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
      if (!('data' in b)) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'data is required');
      const r = await edge.commands.request<{ offset: number; epoch: string }>('publish', { channel: b['channel'], data: b['data'], sender: 'admin', no_history: false });
      log.info({ channel: b['channel'], offset: r.offset }, 'admin published a message');
      return { channel: b['channel'], ...r };
    }
    case '/admin/api/disconnect': {
      const b = await post();
      if (b['user'] !== undefined && !isValidUser(b['user'])) throw new TidingsError(ErrorCodes.INVALID_USER, 'user must be 1-200 characters without control characters');
      if (b['user'] === undefined && typeof b['conn_id'] !== 'string') throw new TidingsError(ErrorCodes.MISSING_FIELD, 'user or conn_id is required');
      const r = await edge.commands.request<{ disconnected: string[] }>('conn_disconnect', b['user'] !== undefined ? { user: b['user'] } : { conn_id: b['conn_id'] });
      log.info({ user: b['user'], conn_id: b['conn_id'], disconnected: r.disconnected.length }, 'admin disconnected connections');
      return r;
    }
    default:
      void config;
      throw new TidingsError(ErrorCodes.NOT_FOUND, path);
  }
}

/** Every few seconds: this edge's numbers to the director, for the page's nodes table. */
function startReports(edge: EdgeServer, log: Logger): void {
  const started = Date.now();
  const report = (): void => {
    const d = edge.hub.delivered;
    edge.commands
      .request(
        'admin_report',
        {
          edge: edge.edgeId,
          pid: process.pid,
          started,
          connections: edge.connectionCount,
          subscriptions: edge.hub.subscriptionCount(),
          channels: edge.hub.channelCount,
          delivered: d.message + d.direct + d.event,
          sent_bytes: edge.scheduler.sentBytes,
        },
        REPORT_INTERVAL_MS,
      )
      .catch((err: Error) => log.debug({ err: err.message }, 'admin report not delivered'));
  };
  const timer = setInterval(report, REPORT_INTERVAL_MS);
  timer.unref();
  setTimeout(report, 200).unref();
  edge.stopHooks.push(() => clearInterval(timer));
}
