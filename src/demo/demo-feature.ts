/**
 * The demo chat (setting `demo`, on in `npm start`, never in production):
 *   GET  <base>/ and <base>/demo      the page (dist/demo/index.html)
 *   GET  <base>/demo.js, /demo.css    its script and style
 *   POST <base>/demo/token {user, rooms?}  -> {token, user, expires, rooms}
 * The token endpoint hands anyone a token for any name, with grants on the
 * `demo.*` rooms only, and sets the channel config of the rooms it is given
 * (presence notifications, history) on the director.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import type { EdgeFeature } from '../edge/features.js';
import type { EdgeServer } from '../edge/edge-server.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { channelProblem } from '../protocol/names.js';
import { signToken } from '../auth/sign.js';
import { readJson, sendError, sendJson } from '../http/io.js';
import { AssetFiles } from './assets.js';

export const DEMO_ROOM_PREFIX = 'demo.';
export const DEMO_ROOMS: readonly string[] = ['demo.lobby', 'demo.random', 'demo.help'];
/** Demo tokens live ten minutes; the SDK asks for a new one on every reconnect. */
export const DEMO_TOKEN_TTL = 600;
const MAX_ROOMS_PER_REQUEST = 20;
const MAX_DEMO_NAME = 40;
const CORS = { 'access-control-allow-origin': '*' };
const ROOM_CONFIG = { notify_presence: true, store_history: true, history_size: 100 };

export const demoFeature: EdgeFeature = (edge, config, log) => {
  if (!config.demo) return;
  const files = new AssetFiles({
    '/': 'demo/index.html',
    '/demo': 'demo/index.html',
    '/demo.js': 'demo/demo.js',
    '/demo.css': 'demo/demo.css',
  });
  const demoLog = log.child({ component: 'demo' });
  edge.addRoute((req, res, path, url) => {
    if (path === '/demo/token') {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, { ...CORS, 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'content-type' }).end();
      } else if (req.method !== 'POST') sendError(res, new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, 'POST /demo/token'));
      else void issueToken(req, res, edge, config, demoLog).catch((err) => sendError(res, err));
      return true;
    }
    if (!files.has(path)) return false;
    if (path === '/' && config.server_base_url && !url.pathname.endsWith('/')) {
      // <base> -> <base>/ so the page's relative URLs (demo.js, tidings.js) resolve under the base.
      res.writeHead(301, { location: `${config.server_base_url}/` }).end();
      return true;
    }
    files.serve(path, req.method, res);
    return true;
  });
  demoLog.warn('demo enabled: /demo/token gives a token to anyone (never enable in production)');
};

function parseRequest(body: unknown): { user: string; rooms: string[] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TidingsError(ErrorCodes.BAD_REQUEST, 'body must be {user, rooms?}');
  const b = body as Record<string, unknown>;
  const user = typeof b['user'] === 'string' ? b['user'].trim() : '';
  if (!/^[\p{L}\p{N}_.\- ]{1,40}$/u.test(user)) {
    throw new TidingsError(ErrorCodes.INVALID_USER, `user must be 1-${MAX_DEMO_NAME} letters, digits, spaces or _ . -`);
  }
  const rooms = b['rooms'] ?? [];
  if (!Array.isArray(rooms) || rooms.length > MAX_ROOMS_PER_REQUEST) {
    throw new TidingsError(ErrorCodes.BAD_REQUEST, `rooms must be a list of at most ${MAX_ROOMS_PER_REQUEST} channels`);
  }
  for (const r of rooms) {
    const problem = channelProblem(r);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    if (!(r as string).startsWith(DEMO_ROOM_PREFIX)) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, `demo rooms start with ${DEMO_ROOM_PREFIX}`);
  }
  return { user, rooms: rooms as string[] };
}

async function issueToken(req: IncomingMessage, res: ServerResponse, edge: EdgeServer, config: Config, log: Logger): Promise<void> {
  if (!config.token_secret) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'the demo needs token_secret (npm start sets a dev one)');
  const { user, rooms } = parseRequest(await readJson(req, 4096));
  await configureRooms(edge, [...new Set([...DEMO_ROOMS, ...rooms])], log);
  const grants = [`${DEMO_ROOM_PREFIX}*`];
  const token = await signToken({ secret: config.token_secret, user, ttl: DEMO_TOKEN_TTL, subscribe: grants, publish: grants, presence: grants, history: grants });
  // Any origin: a page served by one node fetches tokens from another when its own is down.
  sendJson(res, 200, { token, user, expires: Math.floor(Date.now() / 1000) + DEMO_TOKEN_TTL, rooms: DEMO_ROOMS }, CORS);
}

/** Best effort: a director without the channel_config command (method_not_found) still runs the demo, without join/leave pushes. */
async function configureRooms(edge: EdgeServer, rooms: string[], log: Logger): Promise<void> {
  const channels: Record<string, unknown> = {};
  for (const r of rooms) channels[r] = ROOM_CONFIG;
  try {
    await edge.commands.request('channel_config', { channels }, 2000);
  } catch (err) {
    const known = err instanceof TidingsError && err.spec === ErrorCodes.METHOD_NOT_FOUND;
    log[known ? 'debug' : 'warn']({ err: (err as Error).message }, 'channel_config for demo rooms failed');
  }
}
