/**
 * Publishing from backend code over ZeroMQ.
 *
 * A plain PUB socket drops what it sends before the director's subscription
 * has reached it (ZeroMQ's "slow joiner": omnibus lost the first messages).
 * This Publisher uses an XPUB socket instead: upstream XSUB sockets send their
 * subscribe-all to it, so it knows when a path to the director is live, and
 * holds messages in a bounded queue until then. Sends at the high-water mark
 * wait (noDrop) rather than drop.
 *
 * The publishes of one event-loop turn go up as one ZeroMQ message (a publish
 * batch, src/cluster/batch.ts, of at most MAX_BATCH_BYTES, or one larger message), which the
 * director sequences one by one; the single-message forms workers in other
 * languages send (wire.ts) stay accepted.
 *
 * `publishAcked` goes over the command address and resolves with the
 * message's offset and epoch (the command address takes node keys only, so
 * with CURVE it needs a node key pair).
 *
 * With several directors (redis engine) give every director's addresses: the
 * XPUB connects to all of them (only the active one binds its publisher
 * address), and acknowledged publishes go to the active one, found as
 * forwarders find it (DirectorWatch). Unacknowledged publishes sent while no
 * director is active may be lost; acknowledged ones are answered or fail.
 *
 * With `curve`, the sockets are CURVE clients: the worker's key pair (its
 * public key listed in the node's curve_worker_keys) and the public key of
 * the node it connects to (for several directors, their shared
 * curve_director_key): every connection, to every director, is a CURVE one.
 */
import { XPublisher } from 'zeromq';
import { pino, type Logger } from 'pino';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { channelProblem, isValidUser } from '../protocol/names.js';
import type { InboundPublish } from '../cluster/wire.js';
import { MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, encodePublishBatch, pipeSlots, publishEntryBytes, queueBytes } from '../cluster/batch.js';
import { checkValueDepth } from '../protocol/payload.js';
import { SendQueue } from '../zmq/send-queue.js';
import { CommandClient } from '../zmq/command-client.js';
import { DirectorWatch } from '../zmq/director-watch.js';
import { publicKeyOf } from '../zmq/keys.js';
import { connectSecured, ingressLimit, linkLimit, type ClientLink } from '../zmq/security.js';
import { EndOfTurn } from '../runtime/end-of-turn.js';

export interface PublisherOptions {
  /** A publisher address: the director's, or the local forwarder's; or every director's. */
  address: string | readonly string[];
  /** A command address, for acknowledged publishes; or every director's, in the same order. */
  commandAddress?: string | readonly string[];
  /** Messages held while no upstream subscriber is connected (default 100000). */
  maxQueue?: number;
  /** Sender name stamped on messages (default null). */
  sender?: string | null;
  timeoutMs?: number;
  /** CURVE keys: this worker's secret key (its public key is derived) and the node's public key. */
  curve?: { secretKey: string; serverKey: string } | null;
  /** The node's max_message_size (default 65536): larger messages are refused here. */
  maxMessageSize?: number;
  log?: Logger;
}

export class Publisher {
  private socket: XPublisher | null = null;
  private out: SendQueue | null = null;
  /** Batches held while no upstream subscriber is connected, and the messages they hold. */
  private held: Array<{ frames: Buffer[]; count: number }> = [];
  private heldMessages = 0;
  /** This turn's publishes, sent together at its end (or when the batch is full). */
  private batch: InboundPublish[] = [];
  private batchBytes = 0;
  private readonly endOfTurn = new EndOfTurn(() => void this.sendBatch().catch((err: unknown) => this.log.error({ err }, 'publish batch not queued')));
  /** A batch waiting for room in the send queue: later publishes wait for it (back pressure, order). */
  private queuing: Promise<void> | null = null;
  private upstream = 0;
  private loop: Promise<void> | null = null;
  private commands: CommandClient[] = [];
  private watch: DirectorWatch | null = null;
  private readyWaiters: Array<() => void> = [];
  /** The TCP side of the link: whether anything listens at the address. */
  private tcpLink: 'unknown' | 'connected' | 'refused' = 'unknown';
  private linkSince = Date.now();
  private readonly log: Logger;
  private readonly maxQueue: number;
  private readonly maxMessageSize: number;

  constructor(private readonly opts: PublisherOptions) {
    this.log = opts.log ?? pino({ level: 'warn' });
    this.maxQueue = opts.maxQueue ?? 100_000;
    this.maxMessageSize = opts.maxMessageSize ?? 65536;
  }

  private link(maxMessageSize: number): ClientLink {
    const c = this.opts.curve;
    return { curve: c ? { secretKey: c.secretKey, publicKey: publicKeyOf(c.secretKey), serverKey: c.serverKey } : null, maxMessageSize };
  }

  start(): void {
    // Publish batches reach MAX_BATCH_BYTES: the pipe and the queue hold as many bytes as maxQueue 2 KB batches.
    const socket = new XPublisher({ noDrop: true, sendHighWaterMark: pipeSlots(this.maxQueue), linger: 2000 });
    const linkIs = (state: 'connected' | 'refused'): void => {
      if (this.tcpLink !== state) this.linkSince = Date.now();
      this.tcpLink = state;
    };
    socket.events.on('connect', () => linkIs('connected'));
    socket.events.on('disconnect', () => linkIs('refused'));
    socket.events.on('connect:retry', () => {
      if (this.tcpLink !== 'connected') linkIs('refused');
    });
    // The publisher address only sends subscriptions back.
    const publishLink = this.link(ingressLimit({ max_message_size: this.maxMessageSize }));
    connectSecured(socket, this.opts.address, publishLink);
    this.socket = socket;
    this.out = new SendQueue(socket, this.maxQueue, this.log, 'publisher', { maxBytes: queueBytes(this.maxQueue) });
    this.loop = this.upstreamLoop(socket);
    const commandAddresses = this.opts.commandAddress === undefined ? [] : typeof this.opts.commandAddress === 'string' ? [this.opts.commandAddress] : this.opts.commandAddress;
    const commandLink = this.link(linkLimit({ max_message_size: this.maxMessageSize }));
    this.commands = commandAddresses.map(
      (address) => new CommandClient({ address, timeoutMs: this.opts.timeoutMs ?? 5000, maxInFlight: this.maxQueue, highWaterMark: this.maxQueue, link: commandLink, log: this.log }),
    );
    for (const c of this.commands) c.start();
    if (this.commands.length > 1) {
      this.watch = new DirectorWatch({ commandAddresses, link: commandLink, intervalMs: 200, staleMs: 1000, highWaterMark: 1000, log: this.log });
      this.watch.start();
    }
  }

  /** True once a subscriber upstream (the director or a forwarder) is connected. */
  get ready(): boolean {
    return this.upstream > 0;
  }

  /**
   * Resolves when an upstream subscriber is connected, or rejects after timeoutMs.
   * With `failFast` it rejects sooner, with 113 and a plain reason: when
   * nothing listens at the address for `failFastMs`, or when something does
   * but no director subscribes through it within `failFastMs`.
   */
  waitReady(timeoutMs = 5000, failFast = false, failFastMs = 1500): Promise<void> {
    if (this.ready) return Promise.resolve();
    const address = this.opts.address;
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const fail = (err: TidingsError): void => {
        clearTimeout(timer);
        clearInterval(watch);
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(
          this.tcpLink === 'connected'
            ? new TidingsError(ErrorCodes.UNAVAILABLE, `the director is unreachable: ${address} accepted the connection but no director subscribed behind it within ${timeoutMs / 1000} s`)
            : new TidingsError(ErrorCodes.UNAVAILABLE, `no answer from ${address} within ${timeoutMs / 1000} s`),
        );
      }, timeoutMs);
      const watch = setInterval(() => {
        if (!failFast) return;
        const waited = Date.now() - Math.max(started, this.linkSince);
        if (this.tcpLink === 'refused' && waited >= failFastMs) {
          fail(new TidingsError(ErrorCodes.UNAVAILABLE, `nothing is listening at ${address} (connection refused): is a Tidings node running there?`));
        } else if (this.tcpLink === 'connected' && waited >= failFastMs) {
          fail(new TidingsError(ErrorCodes.UNAVAILABLE, `the director is unreachable: ${address} accepted the connection but no director subscribed behind it within ${failFastMs / 1000} s`));
        }
      }, 50);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        clearInterval(watch);
        resolve();
      });
    });
  }

  /**
   * Publish to a channel. Never drops: held until a path upstream exists;
   * rejects with limit_exceeded only when the bounded queue is full. The
   * publishes of one event-loop turn leave together, as one batch
   * (src/cluster/batch.ts); the promise resolves once the message is queued.
   */
  async publish(channel: string, data: unknown, options: { noHistory?: boolean; sender?: string | null } = {}): Promise<void> {
    const problem = channelProblem(channel);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    checkValueDepth(data);
    await this.add({ target: 'channel', name: channel, data: JSON.stringify(data), sender: options.sender ?? this.opts.sender ?? null, noHistory: options.noHistory ?? false });
  }

  async publishToUser(user: string, data: unknown, options: { sender?: string | null } = {}): Promise<void> {
    if (!isValidUser(user)) throw new TidingsError(ErrorCodes.INVALID_USER);
    checkValueDepth(data);
    await this.add({ target: 'user', name: user, data: JSON.stringify(data), sender: options.sender ?? this.opts.sender ?? null, noHistory: false });
  }

  /** Add a publish to this turn's batch; waits while an earlier batch waits for room in the queue. */
  private async add(p: InboundPublish): Promise<void> {
    if (!this.out) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'publisher not started');
    if (p.data === undefined) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'data must be a JSON value');
    const bytes = publishEntryBytes(p);
    // The node rejects (and logs) what exceeds its max_message_size: say so to the caller instead.
    if (bytes > this.maxMessageSize) throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${bytes} bytes > maxMessageSize ${this.maxMessageSize}`);
    while (this.queuing) await this.queuing;
    if (!this.ready && this.heldMessages + this.batch.length >= this.maxQueue) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'publisher queue full while no upstream is connected');
    if (this.batch.length > 0 && (this.batchBytes + bytes > Math.min(MAX_BATCH_BYTES, this.maxMessageSize) || this.batch.length >= MAX_BATCH_ENTRIES)) await this.sendBatch();
    this.batch.push(p);
    this.batchBytes += bytes;
    this.endOfTurn.request();
  }

  /** Queue this turn's batch (it stays under maxMessageSize, so the node's publisher address takes it). */
  private sendBatch(): Promise<void> {
    if (this.batch.length === 0) return this.queuing ?? Promise.resolve();
    const frames = encodePublishBatch(this.batch);
    const count = this.batch.length;
    this.batch = [];
    this.batchBytes = 0;
    const run = this.enqueue(frames, count).finally(() => {
      if (this.queuing === run) this.queuing = null;
    });
    this.queuing = run;
    return run;
  }

  /** Publish over the command address; resolves with the stamped offset and epoch. */
  async publishAcked(channel: string, data: unknown, options: { noHistory?: boolean; sender?: string | null } = {}): Promise<{ offset: number; epoch: string }> {
    checkValueDepth(data);
    const client = await this.activeCommands();
    return client.request('publish', { channel, data, sender: options.sender ?? this.opts.sender ?? null, no_history: options.noHistory ?? false });
  }

  /** The command client of the (active) director; with several, waits up to the timeout for one to be active. */
  private async activeCommands(): Promise<CommandClient> {
    if (this.commands.length === 0) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'no commandAddress given');
    if (!this.watch) return this.commands[0]!;
    const deadline = Date.now() + (this.opts.timeoutMs ?? 5000);
    while (this.watch.current < 0) {
      if (Date.now() > deadline) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'no active director found');
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.commands[this.watch.current]!;
  }

  /** Queue a batch of `count` messages, or hold it while no upstream is connected (room was checked by `add`). */
  private async enqueue(frames: Buffer[], count: number): Promise<void> {
    if (!this.out) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'publisher not started');
    if (!this.ready || this.held.length > 0) {
      this.held.push({ frames, count });
      this.heldMessages += count;
      return;
    }
    while (!this.out.push(frames)) await this.out.space();
  }

  /** Resolves when everything queued has been handed to ZeroMQ (or the timeout passes). */
  async flush(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await this.sendBatch();
    while (this.held.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await this.out?.drain(Math.max(0, deadline - Date.now()));
  }

  /** Messages not yet handed to ZeroMQ (this turn's batch, held ones) plus batches in the send queue. */
  get pending(): number {
    return this.batch.length + this.heldMessages + (this.out?.length ?? 0);
  }

  private async upstreamLoop(socket: XPublisher): Promise<void> {
    try {
      for await (const [msg] of socket) {
        if (!msg || msg.length < 1) continue;
        // Only subscribe-all (empty topic) counts: that is what XSUB upstream sends.
        if (msg.length !== 1) continue;
        if (msg[0] === 1) this.upstream++;
        else if (msg[0] === 0) this.upstream = Math.max(0, this.upstream - 1);
        if (this.ready) this.release();
      }
    } catch (err) {
      if (this.socket) this.log.error({ err }, 'publisher watch loop failed');
    }
  }

  private release(): void {
    const held = this.held;
    this.held = [];
    for (let i = 0; i < held.length; i++) {
      if (!this.out!.push(held[i]!.frames)) {
        // The queue filled: keep the rest, in order, for the next release.
        this.held = held.slice(i);
        void this.out!.space().then(() => this.ready && this.release());
        return;
      }
      this.heldMessages -= held[i]!.count;
    }
    for (const w of this.readyWaiters.splice(0)) w();
  }

  async close(): Promise<void> {
    await this.flush(2000);
    const socket = this.socket;
    this.socket = null;
    this.out?.close();
    socket?.close();
    await this.loop?.catch(() => undefined);
    await this.watch?.stop();
    await Promise.all(this.commands.map((c) => c.stop()));
  }
}
