/** Small HTTP helpers: bounded JSON bodies and catalog-coded error answers. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ErrorCodes, TidingsError, toErrorBody } from '../protocol/errors.js';
import { MAX_BODY_DEPTH, checkJsonTextDepth } from '../protocol/payload.js';

/**
 * The client went away before its request body arrived in full: nothing to
 * answer and nothing wrong with the server, so it is logged at info level
 * with its reason, never as an error (see `logRequestFailure`).
 */
export class RequestAborted extends Error {
  constructor(readonly reason: string) {
    super(`request aborted by the client: ${reason}`);
    this.name = 'RequestAborted';
  }
}

/** Read a request body of at most `limit` bytes. Rejects with PAYLOAD_TOO_LARGE, or RequestAborted. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `body of ${declared} bytes > ${limit}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `body larger than ${limit} bytes`));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    let ended = false;
    req.on('end', () => {
      ended = true;
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (failed) return;
      failed = true;
      reject(new RequestAborted(err.code ?? err.message));
    });
    // A connection closed before the body ended may emit no error at all.
    req.on('close', () => {
      if (failed || ended) return;
      failed = true;
      reject(new RequestAborted('connection closed before the body ended'));
    });
  });
}

/**
 * Read and parse a JSON body; an empty body is `emptyValue`. JSON, text/plain
 * and no content type are read as JSON. So is a form content type
 * (`curl -d` sends application/x-www-form-urlencoded) when the body is JSON
 * text, which no form a browser sends is: `-d '{"channel": ...}'` works as
 * typed. Anything else is 415 with the header to send.
 */
export async function readJson(req: IncomingMessage, limit: number, emptyValue: unknown = undefined): Promise<unknown> {
  const ct = req.headers['content-type'];
  const raw = await readBody(req, limit);
  if (raw.length === 0 && emptyValue !== undefined) return emptyValue;
  const form = ct !== undefined && /^application\/x-www-form-urlencoded\b/i.test(ct);
  if (ct && !form && !/^application\/(.+\+)?json\b/i.test(ct) && !/^text\/plain\b/i.test(ct)) {
    throw new TidingsError(ErrorCodes.UNSUPPORTED_MEDIA_TYPE, `content-type ${ct}: send JSON with content-type: application/json`);
  }
  const text = raw.toString('utf8');
  if (form && !/^\s*[{[]/.test(text)) {
    throw new TidingsError(ErrorCodes.UNSUPPORTED_MEDIA_TYPE, `a form body is not JSON: send JSON with content-type: application/json (curl -H 'content-type: application/json' -d '{...}')`);
  }
  // Before parsing: a body nested deeper than any route accepts is refused
  // (400, payload_too_deep) rather than failing later in a stringify (500).
  checkJsonTextDepth(text, MAX_BODY_DEPTH);
  try {
    return JSON.parse(text);
  } catch {
    throw new TidingsError(ErrorCodes.INVALID_JSON, form ? 'the body is not JSON (sent as a form: add -H "content-type: application/json")' : undefined);
  }
}

/**
 * Log a route's failure at the level it deserves: a client that went away at
 * info with its reason, a catalog error (the caller's fault, already answered)
 * not at all, anything else as an error.
 */
export function logRequestFailure(log: Logger, err: unknown, what: string): void {
  if (err instanceof RequestAborted) log.info({ reason: err.reason }, 'request aborted by the client');
  else if (!(err instanceof TidingsError)) log.error({ err }, what);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Answer with `{error: {code, name, message}}` and the catalog's HTTP status. */
export function sendError(res: ServerResponse, err: unknown): void {
  const status = err instanceof TidingsError ? err.status : 500;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { error: toErrorBody(err) });
}

export function sendText(res: ServerResponse, status: number, text: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The request's source address without the IPv4-mapped prefix. */
export function sourceAddress(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
