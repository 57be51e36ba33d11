/**
 * The other edge processes of this node, for state that lives in one process
 * but is reached by several HTTP requests (a SockJS polling session spreads
 * over many requests, and node:cluster hands each connection to any worker).
 *
 * Ownership is a pure function of a key (the SockJS session id), so every
 * worker agrees without asking anyone: owner = FNV-1a(key) mod count. Each
 * worker also listens on its own unix socket, `<dir>/w<index>.sock`, in a
 * directory the node creates with mode 0700; a worker that receives a request
 * for a key it does not own passes the request there, streaming both ways,
 * and the owner handles it exactly as if it had come in directly (its main
 * server's 'request' listeners). A forwarded request carries
 * `x-tidings-sibling` and is never forwarded again.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { sendError } from '../http/io.js';

export interface SiblingOptions {
  /** This worker's index, 0 <= index < count. */
  index: number;
  count: number;
  /** Directory of the workers' unix sockets. */
  dir: string;
}

/** Header marking a request passed on by a sibling worker. */
export const SIBLING_HEADER = 'x-tidings-sibling';

/** 32-bit FNV-1a of a string's UTF-16 code units: cheap, stable, well spread for random ids. */
export function fnv1a(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function ownerOf(key: string, count: number): number {
  return count <= 1 ? 0 : fnv1a(key) % count;
}

export function siblingSocketPath(dir: string, index: number): string {
  return join(dir, `w${index}.sock`);
}

export class Siblings {
  private server: Server | null = null;
  private readonly forwards: Counter;

  constructor(
    readonly opts: SiblingOptions,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.forwards = new Counter({ name: 'tidings_edge_sibling_forwards_total', help: 'Requests passed to the edge worker that owns their session (SockJS)', registers: [registry] });
  }

  get index(): number {
    return this.opts.index;
  }

  /** The worker that owns `key`. */
  ownerOf(key: string): number {
    return ownerOf(key, this.opts.count);
  }

  /** Whether this request must go to another worker: not ours, and not already passed on. */
  mustForward(req: IncomingMessage, key: string): number | null {
    if (this.opts.count <= 1 || req.headers[SIBLING_HEADER] !== undefined) return null;
    const owner = this.ownerOf(key);
    return owner === this.opts.index ? null : owner;
  }

  /** Listen on this worker's socket and hand what arrives to `main`'s request listeners. */
  async start(main: Server): Promise<void> {
    if (this.opts.count <= 1) return;
    const path = siblingSocketPath(this.opts.dir, this.opts.index);
    try {
      unlinkSync(path); // left by a previous process of this worker that was killed
    } catch {
      // none
    }
    const server = createServer({ keepAliveTimeout: 5000 }, (req, res) => {
      // Only requests passed on by a sibling: this socket is no second door to the node's routes.
      if (req.headers[SIBLING_HEADER] === undefined) sendError(res, new TidingsError(ErrorCodes.NOT_FOUND, 'sibling requests only'));
      else main.emit('request', req, res);
    });
    server.headersTimeout = 10_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections?.();
    await new Promise<void>((r) => s.close(() => r()));
  }

  /** Pass a request to worker `owner` and stream its answer back. */
  forward(req: IncomingMessage, res: ServerResponse, owner: number): void {
    this.forwards.inc();
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, [SIBLING_HEADER]: String(this.opts.index) };
    const remote = req.socket.remoteAddress;
    if (remote) headers['x-forwarded-for'] = req.headers['x-forwarded-for'] ? `${String(req.headers['x-forwarded-for'])}, ${remote}` : remote;
    /** The owner answered (or failed): whatever the client still sends is read and dropped here. */
    const drainRequest = (): void => {
      req.unpipe(upstream);
      req.resume();
    };
    const upstream = request({ socketPath: siblingSocketPath(this.opts.dir, owner), method: req.method, path: req.url, headers, agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      // Streaming transports (xhr_streaming, eventsource, htmlfile) write as they go: no buffering here.
      res.flushHeaders();
      answer.on('data', (chunk: Buffer) => res.write(chunk));
      answer.on('end', () => {
        drainRequest();
        res.end();
      });
      answer.on('error', () => {
        if (!res.writableEnded) res.destroy();
      });
    });
    upstream.on('error', (err) => {
      drainRequest();
      // An owner that answered early (413 before the whole body) and closed: the answer is complete,
      // and the client's keep-alive connection must survive it.
      if (res.writableEnded) return;
      this.log.warn({ owner, err: err.message }, 'sibling worker unreachable');
      if (!res.headersSent) sendError(res, new TidingsError(ErrorCodes.SESSION_UNREACHABLE, `worker ${owner}`));
      else res.destroy();
    });
    // The client went away: so does the request to the owner, which then sees the receiver leave.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  }
}
