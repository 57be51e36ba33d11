/**
 * Request/reply over a DEALER socket to a command address (the director's
 * ROUTER, directly or through a forwarder). Every request has a timeout and
 * the number in flight is bounded.
 */
import { Dealer } from 'zeromq';
import type { Logger } from 'pino';
import { ErrorCodes, TidingsError, errorByCode } from '../protocol/errors.js';
import { SendQueue } from './send-queue.js';
import { connectSecured, type ClientLink } from './security.js';

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface CommandClientOptions {
  address: string;
  timeoutMs: number;
  maxInFlight: number;
  highWaterMark: number;
  /** Keys and message size limit of the socket; requests larger than its limit are refused here. */
  link: ClientLink;
  log: Logger;
}

export class CommandClient {
  private socket: Dealer | null = null;
  private queue: SendQueue | null = null;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private receiving: Promise<void> | null = null;

  constructor(private readonly opts: CommandClientOptions) {}

  start(): void {
    const socket = new Dealer({
      sendHighWaterMark: this.opts.highWaterMark,
      receiveHighWaterMark: this.opts.highWaterMark,
      linger: 0,
    });
    connectSecured(socket, this.opts.address, this.opts.link);
    this.socket = socket;
    this.queue = new SendQueue(socket, this.opts.maxInFlight, this.opts.log, 'command');
    this.receiving = this.receive(socket);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Send a command; resolves with the director's result or rejects with a TidingsError. */
  request<T = unknown>(method: string, body: unknown, timeoutMs = this.opts.timeoutMs): Promise<T> {
    if (!this.queue) return Promise.reject(new TidingsError(ErrorCodes.UNAVAILABLE, 'command client stopped'));
    if (this.pending.size >= this.opts.maxInFlight) {
      return Promise.reject(new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'too many commands in flight'));
    }
    const json = Buffer.from(JSON.stringify(body ?? null));
    // The command address drops a peer that sends more than its limit: refuse such a request here.
    if (json.length > this.opts.link.maxMessageSize) {
      return Promise.reject(new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${method} request of ${json.length} bytes > the command link limit ${this.opts.link.maxMessageSize}`));
    }
    const id = this.nextId++;
    if (this.nextId > 0x7fffffff) this.nextId = 1;
    const idBuf = Buffer.allocUnsafe(4);
    idBuf.writeUInt32BE(id);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TidingsError(ErrorCodes.TIMEOUT, `director did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      if (!this.queue!.push([idBuf, Buffer.from(method), json])) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'command queue full'));
      }
    });
  }

  private async receive(socket: Dealer): Promise<void> {
    try {
      for await (const frames of socket) {
        if (frames.length !== 3) continue;
        const [idBuf, status, body] = frames as [Buffer, Buffer, Buffer];
        if (idBuf.length !== 4) continue;
        const p = this.pending.get(idBuf.readUInt32BE(0));
        if (!p) continue; // answered after its timeout
        this.pending.delete(idBuf.readUInt32BE(0));
        clearTimeout(p.timer);
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch {
          p.reject(new TidingsError(ErrorCodes.INTERNAL, 'unparsable reply from director'));
          continue;
        }
        if (status.toString() === 'ok') p.resolve(parsed);
        else {
          const e = parsed as { code?: number; message?: string };
          const spec = (typeof e.code === 'number' && errorByCode(e.code)) || ErrorCodes.INTERNAL;
          const err = new TidingsError(spec);
          if (typeof e.message === 'string') err.message = e.message;
          p.reject(err);
        }
      }
    } catch (err) {
      if (this.socket) this.opts.log.error({ err }, 'command socket receive failed');
    }
  }

  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = null;
    this.queue?.close();
    this.queue = null;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new TidingsError(ErrorCodes.UNAVAILABLE, 'command client stopped'));
    }
    this.pending.clear();
    if (socket) socket.close();
    await this.receiving?.catch(() => undefined);
  }
}
