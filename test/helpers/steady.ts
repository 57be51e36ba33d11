/**
 * A steady acknowledged publisher and subscribers that account for every
 * offset, for failover tests: published, acknowledged, delivered, missing,
 * duplicated and reordered per subscriber.
 */
import WebSocket from 'ws';
import { signToken } from '../../src/auth/sign.js';
import { TidingsClient, type MessagePush, type SubscribedEvent } from '../../src/client/index.js';
import { TOKEN_SECRET } from './processes.js';

export function sdkClient(urls: string[], user: string): TidingsClient {
  const c = new TidingsClient({
    urls,
    WebSocket,
    getToken: () => signToken({ secret: TOKEN_SECRET, user, ttl: 600, subscribe: ['*'], publish: ['*'] }),
    initialRetryDelay: 0.1,
    maxRetryDelay: 0.5,
    timeout: 3,
  });
  c.connect();
  return c;
}

export interface Acked {
  i: number;
  offset: number;
  epoch: string;
  sentAt: number;
  ackAt: number;
}

export class SteadyPublisher {
  readonly acked: Acked[] = [];
  sent = 0;
  failed = 0;
  private timer: NodeJS.Timeout | null = null;
  private pending = new Set<Promise<void>>();

  constructor(
    private readonly client: TidingsClient,
    private readonly channel: string,
    private readonly perSecond: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.one(), 1000 / this.perSecond);
  }

  private one(): void {
    const i = this.sent++;
    const sentAt = Date.now();
    const p = this.client.publish(this.channel, { i }).then(
      (r) => void this.acked.push({ i, offset: r.offset, epoch: r.epoch, sentAt, ackAt: Date.now() }),
      () => void this.failed++,
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Stop publishing and wait for every answer (at most `ms`). */
  async stop(ms = 5000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([...this.pending]), new Promise((r) => (t = setTimeout(r, ms)))]);
    clearTimeout(t);
  }

  /** The first publish sent at or after `t` that was acknowledged. */
  firstAckSentAfter(t: number): Acked | undefined {
    return this.acked.filter((a) => a.sentAt >= t).sort((a, b) => a.sentAt - b.sentAt)[0];
  }
}

export class CountingSubscriber {
  readonly messages: MessagePush[] = [];
  readonly subscribed: SubscribedEvent[] = [];
  /** Connection and subscription events, for failure messages. */
  readonly events: string[] = [];

  constructor(
    readonly client: TidingsClient,
    readonly name: string,
    channel: string,
  ) {
    client.on('disconnected', (reason) => this.events.push(`disconnected ${JSON.stringify(reason)}`));
    const s = client.subscribe(channel);
    s.on('message', (m) => this.messages.push(m));
    s.on('subscribed', (e) => {
      this.subscribed.push(e);
      this.events.push(`subscribed ${JSON.stringify(e)}`);
    });
    this.ready = s.ready(10);
  }

  readonly ready: Promise<void>;

  has(offsets: readonly number[]): boolean {
    const seen = new Set(this.messages.map((m) => m.offset));
    return offsets.every((o) => seen.has(o));
  }

  /** Missing acknowledged offsets, duplicated and reordered deliveries. */
  account(acked: readonly Acked[]): { delivered: number; missing: number[]; duplicated: number; reordered: number; epochs: string[] } {
    const offsets = this.messages.map((m) => m.offset);
    const seen = new Set(offsets);
    let reordered = 0;
    for (let i = 1; i < offsets.length; i++) if (offsets[i]! <= offsets[i - 1]!) reordered++;
    return {
      delivered: offsets.length,
      missing: acked.map((a) => a.offset).filter((o) => !seen.has(o)),
      duplicated: offsets.length - seen.size,
      reordered,
      epochs: [...new Set(this.messages.map((m) => m.epoch))],
    };
  }
}
