/**
 * A steady acknowledged publisher: `rate` publishes a second over a command
 * address, on a fixed schedule that does not wait for replies (so an outage
 * does not slow the schedule down), each carrying its sequence number. Every
 * publish is recorded with its outcome: the offset and epoch of its
 * acknowledgement, or the error (refused, timed out). Nothing is retried: a
 * publish that failed stays failed, as it would for an application that
 * does not retry.
 */
import { pino } from 'pino';
import { CommandClient } from '../../src/zmq/command-client.js';
import { linkLimit } from '../../src/zmq/security.js';

export interface PublishRecord {
  seq: number;
  sentAt: number;
  /** Set when acknowledged. */
  ackedAt?: number;
  offset?: number;
  epoch?: string;
  /** Set when refused or timed out. */
  error?: string;
}

export interface PublisherOptions {
  commandAddress: string;
  channel: string;
  rate: number;
  /** Seconds a publish may wait for its acknowledgement. */
  ackTimeout: number;
}

/** Publishes a tick schedules at most: a late timer never bursts more than this. */
const MAX_PER_TICK = 50;

export class SteadyPublisher {
  readonly records: PublishRecord[] = [];
  private readonly client: CommandClient;
  private timer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private inFlight = new Set<Promise<void>>();

  constructor(private readonly opts: PublisherOptions) {
    this.client = new CommandClient({
      address: opts.commandAddress,
      timeoutMs: opts.ackTimeout * 1000,
      // Every publish of an outage as long as the ack timeout may be waiting at once.
      maxInFlight: Math.max(1000, Math.ceil(opts.rate * opts.ackTimeout * 2)),
      highWaterMark: 100_000,
      // The chaos cluster runs on loopback without CURVE keys, with the default message size.
      link: { curve: null, maxMessageSize: linkLimit({ max_message_size: 65_536 }) },
      log: pino({ level: 'silent' }),
    });
  }

  start(): void {
    this.client.start();
    this.startedAt = Date.now();
    const tick = (): void => {
      const due = Math.floor(((Date.now() - this.startedAt) * this.opts.rate) / 1000);
      for (let n = 0; this.records.length < due && n < MAX_PER_TICK; n++) this.publishOne();
      this.timer = setTimeout(tick, Math.max(1, Math.floor(1000 / this.opts.rate)));
    };
    tick();
  }

  private publishOne(): void {
    const rec: PublishRecord = { seq: this.records.length, sentAt: Date.now() };
    this.records.push(rec);
    const p = this.client.request<{ offset: number; epoch: string }>('publish', { channel: this.opts.channel, data: { seq: rec.seq, t: rec.sentAt } }).then(
      (r) => {
        rec.ackedAt = Date.now();
        rec.offset = r.offset;
        rec.epoch = r.epoch;
      },
      (err: Error) => {
        rec.error = err.message;
      },
    );
    this.inFlight.add(p);
    void p.then(() => this.inFlight.delete(p));
  }

  /** Stop publishing and wait for every outstanding acknowledgement (each bounded by the ack timeout). */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await Promise.all([...this.inFlight]);
    await this.client.stop();
  }
}
