/**
 * HTTP publishing, answered by the director through the command address:
 *   POST /api/publish                 {channel | users[], data, sender?, no_history?}
 *   POST /api/channels/<channel>/     body = data       (Seth-Pusher)
 *   POST /api/users/<user>/           body = data, sender_id? (Seth-Pusher)
 * Authenticated by an API key; optionally limited to allow_posting_from.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError, toErrorBody } from '../protocol/errors.js';
import { channelProblem, isValidUser } from '../protocol/names.js';
import type { CommandClient } from '../zmq/command-client.js';
import { logRequestFailure, readJson, sendError, sendJson } from '../http/io.js';
import { ApiGuard } from './api-keys.js';
import { historyQuery } from '../protocol/positions.js';
import { checkValueDepth } from '../protocol/payload.js';

const CHANNEL_ROUTE = /^\/api\/channels\/([^/]+)\/?$/;
const USER_ROUTE = /^\/api\/users\/([^/]+)\/?$/;

export class PublishApi {
  private readonly guard: ApiGuard;

  constructor(
    private readonly config: Config,
    private readonly commands: CommandClient,
    private readonly log: Logger,
  ) {
    this.guard = new ApiGuard(config.api_keys, config.allow_posting_from);
  }

  /** Handles the request if the path is one of this API's; returns false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (path === '/api/history' || path === '/api/history/') {
      void this.run(req, res, false, () => this.history(req));
      return true;
    }
    if (path === '/api/publish' || path === '/api/publish/') {
      void this.run(req, res, false, () => this.publish(req));
      return true;
    }
    let m = CHANNEL_ROUTE.exec(path);
    if (m) {
      const channel = safeDecode(m[1]!);
      void this.run(req, res, true, () => this.sethChannel(req, channel));
      return true;
    }
    m = USER_ROUTE.exec(path);
    if (m) {
      const user = safeDecode(m[1]!);
      void this.run(req, res, true, () => this.sethUser(req, user));
      return true;
    }
    return false;
  }

  private async run(req: IncomingMessage, res: ServerResponse, seth: boolean, work: () => Promise<unknown>): Promise<void> {
    try {
      if (req.method !== 'POST') throw new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, 'use POST');
      this.guard.authorize(req);
      const result = await work();
      sendJson(res, 200, seth ? { status: 200, ...(result as object) } : result);
    } catch (err) {
      logRequestFailure(this.log, err, 'publish API failed');
      if (!seth) {
        sendError(res, err);
        return;
      }
      const body = toErrorBody(err);
      const status = err instanceof TidingsError ? err.status : 500;
      // Seth-Pusher's shape, with the catalog code beside it.
      const message = body.code === ErrorCodes.BAD_API_KEY.code ? 'Invalid Auth credentials provided' : body.message;
      sendJson(res, status, { status, message, code: body.code, name: body.name });
    }
  }

  private async publish(req: IncomingMessage): Promise<unknown> {
    const body = await readJson(req, this.config.max_message_size);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new TidingsError(ErrorCodes.MISSING_FIELD, 'body must be an object with channel or users, and data');
    }
    const b = body as Record<string, unknown>;
    if (!('data' in b)) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'data is required');
    checkValueDepth(b['data']);
    if (b['sender'] !== undefined && b['sender'] !== null && typeof b['sender'] !== 'string') {
      throw new TidingsError(ErrorCodes.MISSING_FIELD, 'sender must be a string');
    }
    if (b['no_history'] !== undefined && typeof b['no_history'] !== 'boolean') {
      throw new TidingsError(ErrorCodes.MISSING_FIELD, 'no_history must be a boolean');
    }
    const common = { data: b['data'], sender: b['sender'] ?? null, no_history: b['no_history'] === true };
    if (b['channel'] !== undefined) {
      const problem = channelProblem(b['channel']);
      if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
      const r = await this.commands.request<{ offset: number; epoch: string }>('publish', { channel: b['channel'], ...common });
      return { channel: b['channel'], offset: r.offset, epoch: r.epoch };
    }
    const users = b['users'];
    if (!Array.isArray(users) || users.length === 0 || users.length > 1000) {
      throw new TidingsError(ErrorCodes.MISSING_FIELD, 'channel (string) or users (1-1000 user ids) is required');
    }
    for (const u of users) if (!isValidUser(u)) throw new TidingsError(ErrorCodes.INVALID_USER, JSON.stringify(u));
    return this.commands.request('publish', { users, ...common });
  }

  /** POST /api/history {channel, since?: {offset, epoch}, limit?} */
  private async history(req: IncomingMessage): Promise<unknown> {
    const body = await readJson(req, this.config.max_message_size);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'body must be an object with channel');
    const b = body as Record<string, unknown>;
    const problem = channelProblem(b['channel']);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    return this.commands.request('history', historyQuery(b['channel'] as string, b));
  }

  private async sethChannel(req: IncomingMessage, channel: string): Promise<unknown> {
    const problem = channelProblem(channel);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    const data = await readJson(req, this.config.max_message_size);
    checkValueDepth(data);
    const sender = senderId(data);
    const r = await this.commands.request<{ offset: number; epoch: string }>('publish', { channel, data, sender });
    return { offset: r.offset, epoch: r.epoch };
  }

  private async sethUser(req: IncomingMessage, user: string): Promise<unknown> {
    if (!isValidUser(user)) throw new TidingsError(ErrorCodes.INVALID_USER);
    const data = await readJson(req, this.config.max_message_size);
    checkValueDepth(data);
    await this.commands.request('publish', { users: [user], data, sender: senderId(data) });
    return {};
  }
}

function senderId(data: unknown): string | null {
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    const s = (data as Record<string, unknown>)['sender_id'];
    if (typeof s === 'string') return s;
  }
  return null;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return '\u0000'; // fails the name checks with a clear error
  }
}
