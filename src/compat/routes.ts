/**
 * channelstream 0.7.1's HTTP API on every node's HTTP port: the signed server
 * API (/connect, /subscribe, /unsubscribe, /message POST PATCH DELETE,
 * /user_state, /channel_config, /info) answered by the director through the
 * command address, and the browser's routes (/disconnect, unsigned with a
 * conn_id as channelstream's JS client sends it on unload; /listen, the long
 * poll). Bodies are validated with channelstream's own schemas
 * (schemas.ts), so responses and 422 bodies have its shapes; every answer
 * carries channelstream's CORS headers and OPTIONS is answered.
 *
 * Requests are signed (x-channelstream-secret or ?secret=, see signer.ts);
 * by default the signed value must be the endpoint path
 * (channelstream_signed_value). Error bodies keep channelstream's shapes
 * (401 {"request": "Bad Signature"}, 422 its messages) and add Tidings'
 * `error: {code, name, message}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError, toErrorBody } from '../protocol/errors.js';
import { checkValueDepth } from '../protocol/payload.js';
import { codePointCompare } from '../protocol/names.js';
import type { CommandClient } from '../zmq/command-client.js';
import { logRequestFailure, readJson, sendJson, sourceAddress } from '../http/io.js';
import { verify } from './signer.js';
import { refused } from '../edge/refusals.js';
import { corsHeaders } from './cors.js';
import { Invalid, load, loadMany, canonicalUuid, type Messages } from './schema.js';
import {
  ChannelConfigSchema,
  ChannelInfoBodySchema,
  ConnectBodySchema,
  DisconnectBodySchema,
  MessageBodySchema,
  MessageEditBodySchema,
  MessagesDeleteBodySchema,
  SubscribeBodySchema,
  UserStateBodySchema,
} from './schemas.js';
import { carriedChannelProblem } from '../protocol/names.js';

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
  '/listen': ['GET'],
};

/** A JSONP callback name: an identifier path, never markup. */
const CALLBACK_RE = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;

/** Takes a long poll for a registered connection (the edge feature); null on a node without edges. */
export type ListenHandler = (req: IncomingMessage, res: ServerResponse, connId: string, send: (res: ServerResponse, items: Obj[]) => void) => void;

const sortCp = (list: readonly string[]): string[] => [...list].sort(codePointCompare);

export class CompatApi {
  constructor(
    private readonly config: Config,
    private readonly commands: CommandClient,
    private readonly log: Logger,
    private readonly listen: ListenHandler | null,
  ) {}

  handle(req: IncomingMessage, res: ServerResponse, path: string, url: URL): boolean {
    const methods = METHODS[path];
    if (!methods) return false;
    const cors = corsHeaders(req, this.config.allow_cors);
    if (req.method === 'OPTIONS') {
      res.writeHead(200, { ...cors, 'content-type': 'text/plain; charset=UTF-8', 'content-length': '0' });
      res.end();
      return true;
    }
    if (path === '/listen') this.startListen(req, res, url, cors);
    else void this.run(req, res, path, url, methods, cors);
    return true;
  }

  private async run(req: IncomingMessage, res: ServerResponse, path: string, url: URL, methods: readonly string[], cors: Record<string, string>): Promise<void> {
    try {
      if (!methods.includes(req.method ?? '')) throw new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, `use ${methods.join(' or ')}`);
      const unsignedDisconnect = path === '/disconnect' && this.tokenOf(req, url) === null;
      if (!unsignedDisconnect) this.authorize(req, path, url);
      const body = await readJson(req, this.config.max_message_size, null);
      sendJson(res, 200, await this.dispatch(path, req.method!, body, url), cors);
    } catch (err) {
      this.fail(res, err, cors);
    }
  }

  private fail(res: ServerResponse, err: unknown, cors: Record<string, string>): void {
    if (!(err instanceof Invalid)) logRequestFailure(this.log, err, 'channelstream API failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof Invalid) {
      const error = toErrorBody(new TidingsError(ErrorCodes.MISSING_FIELD, JSON.stringify(err.messages).slice(0, 500)));
      sendJson(res, 422, Array.isArray(err.messages) ? err.messages : { ...err.messages, error }, cors);
      return;
    }
    const error = toErrorBody(err);
    if (error.code === ErrorCodes.BAD_SIGNATURE.code) sendJson(res, 401, { request: 'Bad Signature', error }, cors);
    else sendJson(res, err instanceof TidingsError ? err.status : 500, { error }, cors);
  }

  private tokenOf(req: IncomingMessage, url: URL): string | null {
    const header = req.headers['x-channelstream-secret'];
    return typeof header === 'string' ? header : url.searchParams.get('secret');
  }

  private authorize(req: IncomingMessage, path: string, url: URL): void {
    const allowed = this.config.allow_posting_from;
    // channelstream's 0.0.0.0 entry allows every address.
    if (allowed.length > 0 && !allowed.includes('0.0.0.0') && !allowed.includes(sourceAddress(req))) throw new TidingsError(ErrorCodes.FORBIDDEN_SOURCE, sourceAddress(req));
    const secret = this.config.secret;
    if (!secret) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, 'the channelstream API is off: no secret is set');
    const token = this.tokenOf(req, url);
    if (!token) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, 'x-channelstream-secret header (or ?secret=) is required');
    const anyValue = this.config.channelstream_signed_value === 'any';
    const verdict = verify(token, secret, anyValue ? null : path, Math.floor(Date.now() / 1000));
    if (verdict.ok) return;
    if (verdict.reason === 'wrong_value') {
      throw refused(req, 'signature', new TidingsError(
        ErrorCodes.BAD_SIGNATURE,
        `the signed value must be the endpoint path ${JSON.stringify(path)}; to accept any signed value, as channelstream 0.7 does (its JS signer signs "channelstream"), set channelstream_signed_value=any (TIDINGS_CHANNELSTREAM_SIGNED_VALUE)`,
      ));
    }
    throw refused(req, 'signature', new TidingsError(ErrorCodes.BAD_SIGNATURE, verdict.reason.replace('_', ' ')));
  }

  /** A director error that channelstream reports as a validation failure of one field. */
  private async asField<T>(field: string, message: string, code: number, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof TidingsError && err.code === code) throw new Invalid({ [field]: [message] });
      throw err;
    }
  }

  private async dispatch(path: string, method: string, body: unknown, url: URL): Promise<unknown> {
    switch (path) {
      case '/connect':
        return this.connect(body);
      case '/subscribe':
        return this.subscribe(body, url, 'conn_subscribe', 'subscribed_to');
      case '/unsubscribe':
        return this.subscribe(body, url, 'conn_unsubscribe', 'unsubscribed_from');
      case '/message':
        return this.message(method, body);
      case '/user_state': {
        const b = load(UserStateBodySchema, body);
        return this.asField('user', 'Unknown user', ErrorCodes.NOT_FOUND.code, () => this.commands.request('user_state', b));
      }
      case '/channel_config':
        return this.channelConfig(body);
      case '/info':
        return this.info(body);
      case '/disconnect': {
        // GET reads the query, POST the body (channelstream's disconnect view).
        const raw = method === 'POST' ? ((body as Obj | null)?.['conn_id'] ?? null) : url.searchParams.get('conn_id');
        const b = load(DisconnectBodySchema, { conn_id: raw });
        // A UUID names a registered (channelstream) connection only: native connection ids are never UUIDs.
        const r = await this.commands.request<{ disconnected: string[] }>('conn_disconnect', { conn_id: b['conn_id'] });
        return r.disconnected.length > 0;
      }
    }
    throw new TidingsError(ErrorCodes.NOT_FOUND, path);
  }

  /**
   * channelstream's get_common_info for a list of channels (null: every
   * channel) and an `info` object loaded with InfoResolutionSchema.
   */
  private channelsInfo(channels: readonly string[] | null, info: Obj, overrides: Obj = {}): Promise<unknown> {
    return this.commands.request('channels_info', {
      compat: true,
      channels,
      include_history: info['include_history'] ?? true,
      include_users: info['include_users'] ?? true,
      exclude_channels: info['exclude_channels'] ?? [],
      return_public_state: info['return_public_state'] ?? false,
      ...overrides,
    });
  }

  private async connect(body: unknown): Promise<unknown> {
    const b = load(ConnectBodySchema, body);
    const channels = sortCp(b['channels'] as string[]);
    const r = await this.commands.request<Obj>('conn_connect', {
      username: b['username'],
      conn_id: b['conn_id'],
      channels: [...new Set(channels)],
      fresh_user_state: b['fresh_user_state'],
      user_state: b['user_state'],
      // channelstream sets the public keys on every /connect ([] when none are given).
      state_public_keys: b['state_public_keys'],
      channel_configs: b['channel_configs'],
    });
    return {
      conn_id: r['conn_id'],
      state: r['state'],
      username: r['username'],
      public_state: r['public_state'],
      channels,
      channels_info: await this.channelsInfo(channels, b['info'] as Obj),
    };
  }

  private async subscribe(body: unknown, url: URL, command: string, listKey: string): Promise<unknown> {
    const raw = typeof body === 'object' && body !== null && !Array.isArray(body) ? { ...(body as Obj) } : body;
    // channelstream's pre_load: conn_id from the query string when the body has none.
    if (raw && typeof raw === 'object' && !Array.isArray(raw) && !('conn_id' in raw)) (raw as Obj)['conn_id'] = url.searchParams.get('conn_id');
    const b = load(SubscribeBodySchema, raw);
    const r = await this.asField('conn_id', 'Unknown connection', ErrorCodes.UNKNOWN_CONNECTION.code, () =>
      this.commands.request<Obj & { channels: string[] }>(command, { conn_id: b['conn_id'], channels: [...new Set(b['channels'] as string[])], channel_configs: b['channel_configs'] }),
    );
    const current = sortCp(r.channels);
    return { channels: current, channels_info: await this.channelsInfo(current, b['info'] as Obj), [listKey]: sortCp(r[listKey] as string[]) };
  }

  private async message(method: string, body: unknown): Promise<unknown> {
    // The payload rule every publish path passes at the door.
    checkValueDepth(body);
    let items: Obj[];
    let op: string;
    if (method === 'POST') {
      op = 'post';
      // channelstream sends (and answers) only items with a channel or pm_users.
      items = loadMany(MessageBodySchema, body)
        .map((m): Obj => ({ ...m, edited: null }))
        .filter((m) => m['channel'] || (m['pm_users'] as unknown[]).length > 0);
    } else if (method === 'PATCH') {
      op = 'edit';
      items = loadMany(MessageEditBodySchema, body);
    } else {
      op = 'delete';
      items = loadMany(MessagesDeleteBodySchema, body);
    }
    if (items.length > 0) await this.commands.request('cs_message', { op, messages: items });
    return items;
  }

  private async channelConfig(body: unknown): Promise<unknown> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Invalid({ _schema: ['Invalid input type.'] });
    const configs: Obj = {};
    for (const [name, raw] of Object.entries(body as Obj)) {
      const problem = carriedChannelProblem(name);
      if (problem) throw new Invalid({ [name]: [`Not routable: ${problem}.`] });
      // channelstream loads each config whole (keys left out take their defaults) and reports the first bad one as is.
      configs[name] = load(ChannelConfigSchema, raw);
    }
    const names = Object.keys(configs);
    if (names.length === 0) return { channels: {}, users: [] };
    await this.commands.request('channel_config', { channels: configs });
    return this.channelsInfo(names, {}, { include_history: false, include_users: false });
  }

  private info(body: unknown): Promise<unknown> {
    // channelstream: an empty body is everything; otherwise {info: {...}} is required.
    if (body === null) return this.channelsInfo(null, {});
    const info = load(ChannelInfoBodySchema, body)['info'] as Obj;
    const channels = info['channels'] === undefined ? null : (info['channels'] as string[]);
    return this.channelsInfo(channels, info);
  }

  // --- long polling ---------------------------------------------------------------

  private startListen(req: IncomingMessage, res: ServerResponse, url: URL, cors: Record<string, string>): void {
    try {
      if (req.method !== 'GET') throw new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, 'use GET');
      const callback = url.searchParams.get('callback');
      if (callback !== null && (callback.length > 128 || !CALLBACK_RE.test(callback))) throw new TidingsError(ErrorCodes.BAD_REQUEST, 'callback must be a JavaScript identifier path');
      const connId = canonicalUuid(url.searchParams.get('conn_id'));
      if (connId === null) {
        // channelstream's uuid_from_string error, as its 422 body.
        sendJson(res, 422, ['Wrong UUID format'] satisfies Messages, cors);
        return;
      }
      if (!this.listen) throw new TidingsError(ErrorCodes.NOT_FOUND, 'long polling is served by nodes with websocket edges');
      req.resume();
      this.listen(req, res, connId, (r, items) => {
        const json = JSON.stringify(items);
        if (callback === null) sendJson(r, 200, items, cors);
        else {
          const text = `${callback}(${json})`;
          r.writeHead(200, { ...cors, 'content-type': 'application/javascript; charset=utf-8', 'x-content-type-options': 'nosniff', 'content-length': Buffer.byteLength(text) });
          r.end(text);
        }
      });
    } catch (err) {
      this.fail(res, err, cors);
    }
  }

  /** Answer a long poll the edge could not take. */
  listenFailed(res: ServerResponse, err: unknown, req: IncomingMessage): void {
    const cors = corsHeaders(req, this.config.allow_cors);
    if (err instanceof TidingsError && err.code === ErrorCodes.UNKNOWN_CONNECTION.code) {
      this.fail(res, new TidingsError(ErrorCodes.LISTEN_UNKNOWN_CONNECTION, err.detail), cors);
      return;
    }
    this.fail(res, err, cors);
  }
}
