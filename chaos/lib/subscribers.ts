/**
 * SDK subscribers, as an application runs them: the real TidingsClient with
 * `ws`, one per connection, each given its own node's URL first and the other
 * nodes after it to fail over to, with the SDK's own reconnect and recovery.
 * Each records what the application sees: every message (sequence number,
 * offset, epoch, arrival time), every disconnect and every (re)subscribe.
 */
import WebSocket from 'ws';
import { signToken } from '../../src/auth/sign.js';
import { TidingsClient, type ClientOptions, type Subscription } from '../../src/client/index.js';
import type { ChaosNode } from './cluster.js';

export interface Delivery {
  seq: number;
  offset: number;
  epoch: string;
  at: number;
}

export interface SubscriberRecord {
  id: string;
  /** The node it first connected to, and the edge process that took it. */
  node: string;
  edge: string | null;
  deliveries: Delivery[];
  disconnects: Array<{ at: number; code: number; reason: string }>;
  subscribes: Array<{ at: number; resubscribed: boolean; recovered: boolean; replayed: number }>;
}

export interface FleetOptions {
  nodes: readonly ChaosNode[];
  perNode: number;
  channel: string;
  tokenSecret: string;
  /** SDK options (retry delays, timeout) over the SDK's defaults. */
  sdk: Partial<ClientOptions>;
}

export class SubscriberFleet {
  readonly records: SubscriberRecord[] = [];
  private readonly clients: TidingsClient[] = [];
  private readonly subs: Subscription[] = [];

  constructor(private readonly opts: FleetOptions) {}

  /** Connect and subscribe everyone; resolves when every subscription is live. */
  async start(timeoutSec = 20): Promise<void> {
    const { nodes, perNode, channel, tokenSecret } = this.opts;
    nodes.forEach((node, n) => {
      // Own node first, then the others in ring order: a client of a dead node fails over.
      const urls = [...nodes.slice(n), ...nodes.slice(0, n)].map((x) => x.url);
      for (let i = 0; i < perNode; i++) {
        const id = `${node.name}-s${i}`;
        const rec: SubscriberRecord = { id, node: node.name, edge: null, deliveries: [], disconnects: [], subscribes: [] };
        const client = new TidingsClient({
          ...this.opts.sdk,
          urls,
          WebSocket: WebSocket as never,
          getToken: () => signToken({ secret: tokenSecret, user: id, ttl: 3600, subscribe: [channel] }),
        });
        client.on('connected', (info) => {
          if (rec.edge === null) rec.edge = info.node;
        });
        client.on('disconnected', (r) => rec.disconnects.push({ at: Date.now(), code: r.code, reason: r.name }));
        const sub = client.subscribe(channel);
        sub.on('message', (m) => {
          const seq = (m.data as { seq?: unknown } | null)?.seq;
          rec.deliveries.push({ seq: typeof seq === 'number' ? seq : -1, offset: m.offset, epoch: m.epoch, at: Date.now() });
        });
        sub.on('subscribed', (e) => rec.subscribes.push({ at: Date.now(), resubscribed: e.resubscribed, recovered: e.recovered, replayed: e.replayed }));
        client.connect();
        this.records.push(rec);
        this.clients.push(client);
        this.subs.push(sub);
      }
    });
    await Promise.all(this.subs.map((s) => s.ready(timeoutSec)));
  }

  stop(): void {
    for (const c of this.clients) c.disconnect();
  }
}
