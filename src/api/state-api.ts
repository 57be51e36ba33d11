/**
 * The native HTTP server API for channel state, answered by the director
 * through the command address (every node serves it). API-key auth as the
 * publish API, optionally limited to allow_posting_from. All routes are
 * POST with a JSON object body; see docs/api.md.
 *   /api/presence            {channel}                      -> {channel, users:[{user, connections, state}]}
 *   /api/presence_stats      {channel}                      -> {channel, users, connections}
 *   /api/user_state          {user, user_state?, state_public_keys?}
 *   /api/channel_config      {channels: {name: config}}
 *   /api/info                {channels?, include_history?, include_users?, ...}
 *   /api/connections/connect      {username, conn_id?, channels?, ...}
 *   /api/connections/subscribe    {conn_id, channels, channel_configs?}
 *   /api/connections/unsubscribe  {conn_id, channels}
 *   /api/connections/disconnect   {conn_id} | {user}
 *   /api/connections/info         {conn_id} -> {conn_id, user, edge, channels, registered}
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import type { CommandClient } from '../zmq/command-client.js';
import { logRequestFailure, readJson, sendError, sendJson } from '../http/io.js';
import { ApiGuard } from './api-keys.js';

const ROUTES: Record<string, string> = {
  '/api/presence': 'presence',
  '/api/presence_stats': 'presence_stats',
  '/api/user_state': 'user_state',
  '/api/channel_config': 'channel_config',
  '/api/info': 'channels_info',
  '/api/connections/connect': 'conn_connect',
  '/api/connections/subscribe': 'conn_subscribe',
  '/api/connections/unsubscribe': 'conn_unsubscribe',
  '/api/connections/disconnect': 'conn_disconnect',
  '/api/connections/info': 'conn_info',
};

export class StateApi {
  private readonly guard: ApiGuard;

  constructor(
    private readonly config: Config,
    private readonly commands: CommandClient,
    private readonly log: Logger,
  ) {
    this.guard = new ApiGuard(config.api_keys, config.allow_posting_from);
  }

  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const command = ROUTES[path.endsWith('/') && path.length > 1 ? path.slice(0, -1) : path];
    if (!command) return false;
    void this.run(req, res, command);
    return true;
  }

  private async run(req: IncomingMessage, res: ServerResponse, command: string): Promise<void> {
    try {
      if (req.method !== 'POST') throw new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, 'use POST');
      this.guard.authorize(req);
      const body = await readJson(req, this.config.max_message_size, {});
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TidingsError(ErrorCodes.BAD_REQUEST, 'body must be a JSON object');
      sendJson(res, 200, await this.commands.request(command, body));
    } catch (err) {
      logRequestFailure(this.log, err, 'state API failed');
      sendError(res, err);
    }
  }
}
