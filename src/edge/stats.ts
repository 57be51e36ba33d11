/**
 * What an edge tells operators about its clients: refused authentications
 * (counted by method and reason, logged with the reason, repeats limited),
 * closes by code, messages and bytes delivered, subscriptions. The hot path
 * only adds to plain integers; they reach prom-client when /metrics is
 * scraped, as elsewhere in the edge.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { closeByNumber } from '../protocol/errors.js';
import { RepeatLimiter } from '../log-limiter.js';

/** How a client proved (or failed to prove) who it is. */
export type AuthMethod = 'token' | 'api_key' | 'signature' | 'admin_secret' | 'ticket';

/** Refusals that are part of normal operation (a client refreshing an expired token) are logged at debug. */
const ROUTINE = new Set(['token_expired']);

export class EdgeStats {
  /** Bytes written to client sockets, every protocol (counted by the outboxes' scheduler). */
  sentBytes = 0;
  private readonly authRefused: Counter<'method' | 'reason'>;
  private readonly closeCounts = new Map<string, number>();
  private readonly limiter: RepeatLimiter;

  constructor(
    registry: Registry,
    private readonly log: Logger,
    hooks: { subscriptions: () => number; sentBytes: () => number },
  ) {
    this.limiter = new RepeatLimiter(log);
    this.authRefused = new Counter({
      name: 'tidings_edge_auth_refused_total',
      help: 'Refused authentications, by method (token, api_key, signature, admin_secret, ticket) and reason (error name)',
      labelNames: ['method', 'reason'],
      registers: [registry],
    });
    const closeCounts = this.closeCounts;
    new Counter({
      name: 'tidings_edge_closes_total',
      help: 'Client websockets closed, by close code (sent by the server or the client; 1006: no close frame)',
      labelNames: ['code'],
      registers: [registry],
      collect() {
        for (const [code, n] of closeCounts) this.inc({ code }, n);
        closeCounts.clear();
      },
    });
    let lastBytes = 0;
    const bytes = new Counter({
      name: 'tidings_edge_sent_bytes_total',
      help: 'Bytes written to client websockets (frames of every protocol: messages, replies, pings)',
      registers: [registry],
      collect() {
        const now = hooks.sentBytes();
        if (now > lastBytes) bytes.inc(now - lastBytes);
        lastBytes = now;
      },
    });
    new Gauge({
      name: 'tidings_edge_subscriptions',
      help: 'Channel subscriptions held by the clients of this edge (one per connection and channel)',
      registers: [registry],
      collect() {
        this.set(hooks.subscriptions());
      },
    });
  }

  /** A client or API caller was refused: count it and log the reason (repeats limited). */
  authRefusedBy(method: AuthMethod, reason: string, detail: string, fields: Record<string, unknown> = {}): void {
    this.authRefused.inc({ method, reason });
    const level = ROUTINE.has(reason) ? 'debug' : 'info';
    this.limiter.write(level, `auth:${method}:${reason}`, { method, reason, detail, ...fields }, `${method.replace('_', ' ')} refused: ${reason}`);
  }

  /** A client websocket closed with this code; unknown codes are counted as "other" (clients choose them). */
  closed(code: number): void {
    const key = closeByNumber(code) || (code >= 1000 && code <= 1015) ? String(code) : 'other';
    this.closeCounts.set(key, (this.closeCounts.get(key) ?? 0) + 1);
  }

  /** Rate-limited warnings for repeated failures elsewhere in the edge. */
  warnRepeated(kind: string, fields: Record<string, unknown>, msg: string): void {
    this.limiter.write('warn', kind, fields, msg);
  }

  get logger(): Logger {
    return this.log;
  }
}
