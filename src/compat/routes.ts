/**
 * channelstream's server API on every node's HTTP port, answered by the
 * director through the command address, with channelstream's request and
 * response JSON: /connect, /subscribe, /unsubscribe, /message (POST, PATCH,
 * DELETE), /user_state, /channel_config, /info, /disconnect. Requests are
 * signed (x-channelstream-secret or ?secret=, see signer.ts) over the endpoint
 * path and may be limited to allow_posting_from. Errors keep channelstream's
 * shapes (401 {"request":"Bad Signature"}, 422 per-field messages) and add
 * Tidings' `error: {code, name, message}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError, toErrorBody } from '../protocol/errors.js';
import type { CommandClient } from '../zmq/command-client.js';
import { readJson, sendJson, sourceAddress } from '../http/io.js';
import { verify } from './signer.js';
import { refused } from '../edge/refusals.js';

type Obj = Record<string, unknown>;

const METHODS: Record<string, readonly string[]> = {
  '/connect': ['POST'],
  '/subscribe': ['POST'],
  '/unsubscribe': ['POST'],
  '/message': ['POST', 'PATCH', 'DELETE'],
  '/user_state': ['POST'],
  '/channel_config': ['POST'],
  '/info': ['GET', 'POST'],
  '/disconnect': ['GET', 'POST'],
};

/** A 422 with channelstream's per-field messages. */
class Invalid extends TidingsError {
  constructor(readonly fields: Record<string, string[]>) {
    super(ErrorCodes.MISSING_FIELD, Object.keys(fields).join(', '));
  }
}

const REQUIRED = 'Missing data for required field.';

function asObject(body: unknown): Obj {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Invalid({ _schema: ['Invalid input type: expected an object.'] });
  return body as Obj;
}

export class CompatApi {
  constructor(
    private readonly config: Config,
    private readonly commands: CommandClient,
    private readonly log: Logger,
  ) {}

  handle(req: IncomingMessage, res: ServerResponse, path: string, url: URL): boolean {
    const methods = METHODS[path];
    if (!methods) return false;
    void this.run(req, res, path, url, methods);
    return true;
  }

  private async run(req: IncomingMessage, res: ServerResponse, path: string, url: URL, methods: readonly string[]): Promise<void> {
    try {
      if (!methods.includes(req.method ?? '')) throw new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, `use ${methods.join(' or ')}`);
      this.authorize(req, path, url);
      const body = await readJson(req, this.config.max_message_size, null);
      sendJson(res, 200, await this.dispatch(path, req.method!, body, url));
    } catch (err) {
      if (!(err instanceof TidingsError)) this.log.error({ err }, 'channelstream API failed');
      const status = err instanceof TidingsError ? err.status : 500;
      const error = toErrorBody(err);
      if (err instanceof Invalid) sendJson(res, 422, { ...err.fields, error });
      else if (error.code === ErrorCodes.BAD_SIGNATURE.code) sendJson(res, 401, { request: 'Bad Signature', error });
      else sendJson(res, status, { error });
    }
  }

  private authorize(req: IncomingMessage, path: string, url: URL): void {
    const allowed = this.config.allow_posting_from;
    if (allowed.length > 0 && !allowed.includes(sourceAddress(req))) throw new TidingsError(ErrorCodes.FORBIDDEN_SOURCE, sourceAddress(req));
    const secret = this.config.secret;
    if (!secret) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, 'the channelstream API is off: no secret is set');
    const header = req.headers['x-channelstream-secret'];
    const token = typeof header === 'string' ? header : url.searchParams.get('secret');
    if (!token) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, 'x-channelstream-secret header (or ?secret=) is required');
    const verdict = verify(token, secret, path, Math.floor(Date.now() / 1000));
    if (!verdict.ok) throw refused(req, 'signature', new TidingsError(ErrorCodes.BAD_SIGNATURE, verdict.reason.replace('_', ' ')));
  }

  private async dispatch(path: string, method: string, body: unknown, url: URL): Promise<unknown> {
    switch (path) {
      case '/connect':
        return this.connect(asObject(body));
      case '/subscribe':
        return this.subscribe(asObject(body), 'conn_subscribe', 'subscribed_to');
      case '/unsubscribe':
        return this.subscribe(asObject(body), 'conn_unsubscribe', 'unsubscribed_from');
      case '/message':
        return this.message(method, body);
      case '/user_state': {
        const b = asObject(body);
        if (typeof b['user'] !== 'string' || b['user'] === '') throw new Invalid({ user: [REQUIRED] });
        return this.commands.request('user_state', b);
      }
      case '/channel_config': {
        const b = asObject(body);
        if (Object.keys(b).length === 0) throw new Invalid({ _schema: ['No channels specified.'] });
        await this.commands.request('channel_config', { channels: b });
        return this.commands.request('channels_info', { channels: Object.keys(b), include_history: false, include_users: false });
      }
      case '/info':
        return this.info(body);
      case '/disconnect': {
        const b = body === null ? {} : asObject(body);
        const connId = b['conn_id'] ?? url.searchParams.get('conn_id');
        if (typeof connId !== 'string' || connId === '') throw new Invalid({ conn_id: [REQUIRED] });
        const r = await this.commands.request<{ disconnected: string[] }>('conn_disconnect', { conn_id: connId });
        return r.disconnected.length > 0;
      }
    }
    throw new TidingsError(ErrorCodes.NOT_FOUND, path);
  }

  private channelsInfo(channels: unknown[], info: unknown): Promise<unknown> {
    const cfg = typeof info === 'object' && info !== null && !Array.isArray(info) ? (info as Obj) : {};
    if (channels.length === 0) return Promise.resolve({ channels: {}, users: [] });
    return this.commands.request('channels_info', {
      channels,
      include_history: cfg['include_history'] ?? true,
      include_users: cfg['include_users'] ?? true,
      include_connections: cfg['include_connections'] ?? false,
      exclude_channels: cfg['exclude_channels'] ?? [],
      return_public_state: cfg['return_public_state'] ?? false,
    });
  }

  private async connect(b: Obj): Promise<unknown> {
    const username = b['username'] ?? b['user'];
    if (typeof username !== 'string' || username === '') throw new Invalid({ username: [REQUIRED] });
    const r = await this.commands.request<Obj & { channels: string[] }>('conn_connect', {
      username,
      conn_id: b['conn_id'],
      channels: b['channels'] ?? [],
      fresh_user_state: b['fresh_user_state'],
      user_state: b['user_state'],
      state_public_keys: b['state_public_keys'],
      channel_configs: b['channel_configs'],
    });
    return { ...r, channels_info: await this.channelsInfo(r.channels, b['info']) };
  }

  private async subscribe(b: Obj, command: string, listKey: string): Promise<unknown> {
    if (typeof b['conn_id'] !== 'string') throw new Invalid({ conn_id: [REQUIRED] });
    if (!Array.isArray(b['channels']) || b['channels'].length === 0) throw new Invalid({ channels: ['Shorter than minimum length 1.'] });
    const r = await this.commands.request<Obj & { channels: string[] }>(command, { conn_id: b['conn_id'], channels: b['channels'], channel_configs: b['channel_configs'] });
    return { channels: r.channels, channels_info: await this.channelsInfo(r.channels, b['info']), [listKey]: r[listKey] };
  }

  private async message(method: string, body: unknown): Promise<unknown> {
    const op = method === 'POST' ? 'post' : method === 'PATCH' ? 'edit' : 'delete';
    const messages = Array.isArray(body) ? body : body === null ? null : [body];
    if (messages === null) throw new Invalid({ _schema: ['Body must be a list of messages.'] });
    const r = await this.commands.request<{ invalid?: Record<string, string[]>; messages?: unknown[] }>('cs_message', { op, messages });
    if (r.invalid) throw new Invalid(r.invalid);
    return r.messages;
  }

  private info(body: unknown): Promise<unknown> {
    const b = body === null ? {} : asObject(body);
    const info = (b['info'] && typeof b['info'] === 'object' ? b['info'] : b) as Obj;
    return this.commands.request('channels_info', {
      channels: info['channels'] ?? [],
      include_history: info['include_history'] ?? true,
      include_users: info['include_users'] ?? true,
      include_connections: info['include_connections'] ?? false,
      exclude_channels: info['exclude_channels'] ?? [],
      return_public_state: info['return_public_state'] ?? false,
    });
  }
}
