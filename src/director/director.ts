/**
 * The director: sequences every channel message (offset, epoch), keeps the
 * channel state and answers commands. Publishes arrive on the publisher
 * address (XSUB), stamped pushes leave on the subscriber address (XPUB), which
 * only forwards a topic to nodes that subscribed to it.
 */
import { XPublisher, XSubscriber, Router } from 'zeromq';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { channelProblem, isValidUser } from '../protocol/names.js';
import { SendQueue } from '../zmq/send-queue.js';
import { bindSecured, linkLimit, type BoundLink } from '../zmq/security.js';
import { channelTopic, userTopic } from '../cluster/topics.js';
import { DownKind, encodeHeader, parsePublish, WireError } from '../cluster/wire.js';
import { ChannelRegistry } from './channels.js';
import { encodeDirectPush, messagePushParts, assemblePush } from './push-encoding.js';
import { CommandHandlers } from './commands.js';
import type { HistoryLimits, MaybePromise, StateEngine, StreamPosition } from './engine/engine.js';
import { MemoryEngine } from './engine/memory-engine.js';
import { RedisEngine } from './engine/redis-engine.js';
import { DirectorLease } from './engine/lease.js';

export type PublishOutcome = StreamPosition;

/** Sequencing calls in flight to the engine (redis) before the publisher loop stops reading. */
const MAX_IN_FLIGHT = 10_000;
/** Channel keys in Redis outlive their last use by at least this long. */
const REDIS_KEEP_MS = 24 * 3600_000;

export interface DirectorEvents {
  /** This director became the active one (redis engine; at start with memory). */
  onActive: Array<() => Promise<void> | void>;
  /** This director lost its lease: it must stop; its supervisor restarts it as a standby. */
  onFenced: Array<(reason: string) => void>;
}

const COLLECT_INTERVAL_MS = 10_000;

export class Director {
  private xsub: XSubscriber | null = null;
  private xpub: XPublisher | null = null;
  private router: Router | null = null;
  private down: SendQueue | null = null;
  private replies: SendQueue | null = null;
  readonly channels: ChannelRegistry;
  /** Topics some node holds a subscription to, as XPUB reports them. */
  readonly heldTopics = new Set<string>();
  private loops: Promise<void>[] = [];
  private links: BoundLink[] = [];
  private collectTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  /** The command table; features add their commands with `handlers.register`. */
  readonly handlers: CommandHandlers;
  /** Extra reasons to keep a channel's state (e.g. presence members); checked by collection. */
  readonly channelHolds: Array<(channel: string) => boolean> = [];
  /** Run after each channel collection, to collect state kept beside the channels. */
  readonly collectors: Array<(now: number) => void> = [];
  private readonly published: Counter<'target'>;
  /** Channel messages sent since the last scrape, added to `published` when collected (keeps label hashing off the hot path). */
  private publishedChannel = 0;
  private readonly rejected: Counter<'code'>;

  /** Channels idle this long with no listener and no history are collected (channel_idle_timeout). */
  private readonly collectIdleMs: number;
  /** Where channel sequences and history live. */
  readonly engine: StateEngine;
  /** The lease that makes this director the active one (redis engine), else null. */
  readonly lease: DirectorLease | null = null;
  /** Whether this director sequences (always with memory; while it holds the lease with redis). */
  active = false;
  readonly events: DirectorEvents = { onActive: [], onFenced: [] };
  /** History bounds of a channel; cluster-state replaces it with the channel's config. */
  historyLimits: (channel: string) => HistoryLimits;
  private inFlight = 0;
  private inFlightWaiters: Array<() => void> = [];
  private readonly nodeName: string;
  /** Largest frame the director sends: what every node's connecting socket accepts. */
  private readonly frameLimit: number;

  constructor(
    readonly config: Config,
    readonly log: Logger,
    registry: Registry,
  ) {
    this.collectIdleMs = config.channel_idle_timeout * 1000;
    this.frameLimit = linkLimit(config);
    this.channels = new ChannelRegistry({
      historySize: config.history_size,
      historyTtlMs: config.history_ttl * 1000,
    });
    const defaults: HistoryLimits = Object.freeze({ size: config.history_size, ttlMs: config.history_ttl * 1000, maxBytes: 0 });
    this.historyLimits = () => defaults;
    this.nodeName = config.node_id ?? `director-${process.pid}`;
    if (config.state_engine === 'redis') {
      const engine = new RedisEngine({
        url: config.redis_url,
        prefix: config.redis_prefix,
        keepMs: Math.max(REDIS_KEEP_MS, this.collectIdleMs),
        replicasAck: config.redis_replicas_ack,
        replicasTimeoutMs: Math.min(1000, Math.round(config.director_lease * 500)),
        log: log.child({ component: 'redis-engine' }),
      });
      this.engine = engine;
      const leaseMs = Math.round(config.director_lease * 1000);
      this.lease = new DirectorLease({ redis: engine.redis, prefix: config.redis_prefix, node: this.nodeName, leaseMs, pollMs: Math.max(50, Math.min(250, Math.round(leaseMs / 8))), log: log.child({ component: 'lease' }) });
      this.lease.on('acquired', (value) => {
        engine.fence = value;
        // With replicas acknowledging, the lease (and its fencing counter) must survive a promotion before we act on it.
        void engine
          .replicated()
          .then(() => this.activate())
          .catch((err: unknown) => this.fenced(`activation failed: ${(err as Error).message}`));
      });
      this.lease.on('lost', (reason) => this.fenced(reason));
    } else {
      this.engine = new MemoryEngine(this.channels);
    }
    this.handlers = new CommandHandlers(this, log);
    this.published = new Counter({
      name: 'tidings_director_published_total',
      help: 'Messages sequenced and sent down by the director',
      labelNames: ['target'],
      registers: [registry],
      collect: () => {
        if (this.publishedChannel === 0) return;
        this.published.inc({ target: 'channel' }, this.publishedChannel);
        this.publishedChannel = 0;
      },
    });
    this.rejected = new Counter({
      name: 'tidings_director_rejected_total',
      help: 'Publishes the director rejected, by error code',
      labelNames: ['code'],
      registers: [registry],
    });
    const channels = this.channels;
    new Gauge({
      name: 'tidings_director_channels',
      help: 'Channels with state on the director',
      registers: [registry],
      collect() {
        this.set(channels.size);
      },
    });
  }

  async start(): Promise<void> {
    this.collectTimer = setInterval(() => this.collect(), Math.min(COLLECT_INTERVAL_MS, Math.max(250, this.collectIdleMs / 4)));
    this.collectTimer.unref();
    await this.engine.start();
    if (!this.lease) {
      await this.activate();
      await this.bindCommands();
      return;
    }
    // Standing by until the lease is ours: only the command address answers (role; everything else 155).
    await this.bindCommands();
    this.log.info({ command: this.config.command_address, engine: this.engine.kind, curve: this.config.curve !== null }, 'director standing by for the lease');
    this.lease.start();
  }

  private async bindCommands(): Promise<void> {
    const hwm = this.config.zmq_high_water_mark;
    this.router = new Router({ sendHighWaterMark: hwm, receiveHighWaterMark: hwm, linger: 0 });
    this.links.push(await bindSecured(this.router, this.config.command_address, 'command', this.config, this.log));
    this.replies = new SendQueue(this.router, hwm, this.log, 'director-replies');
    this.loops.push(this.commandLoop(this.router));
  }

  /**
   * Become the sequencer: bind the publisher and subscriber addresses (a
   * standby binds neither, so workers' PUB sockets and forwarders reach only
   * the active director) and start reading publishes.
   */
  private async activate(): Promise<void> {
    if (this.stopping || this.active) return;
    const hwm = this.config.zmq_high_water_mark;
    // noDrop: at the high-water mark sends wait instead of silently dropping.
    this.xpub = new XPublisher({ sendHighWaterMark: hwm, receiveHighWaterMark: hwm, noDrop: true, linger: 0 });
    this.xsub = new XSubscriber({ receiveHighWaterMark: hwm, sendHighWaterMark: hwm, linger: 0 });
    this.links.push(await bindSecured(this.xpub, this.config.subscriber_address, 'subscriber', this.config, this.log));
    this.links.push(await bindSecured(this.xsub, this.config.publisher_address, 'publisher', this.config, this.log));
    // XSUB: subscribe to everything published to us.
    await this.xsub.send(Buffer.from([1]));
    this.down = new SendQueue(this.xpub, hwm, this.log, 'director-down');
    for (const f of this.events.onActive) await f();
    this.active = true;
    this.loops.push(this.publishLoop(this.xsub), this.subscriptionLoop(this.xpub));
    this.log.info(
      {
        subscriber: this.config.subscriber_address,
        publisher: this.config.publisher_address,
        command: this.config.command_address,
        engine: this.engine.kind,
        lease: this.lease?.value ?? null,
        curve: this.config.curve !== null,
      },
      'director listening',
    );
  }

  /** The lease is lost: stop sequencing at once (Redis refuses this director's writes already) and tell the node. */
  private fenced(reason: string): void {
    if (this.stopping) return;
    this.active = false;
    this.log.error({ reason }, 'director fenced: it is no longer the active director and stops');
    for (const s of [this.xsub, this.xpub]) s?.close();
    this.down?.close();
    for (const f of this.events.onFenced) f(reason);
  }

  /** This director's role, as forwarders ask it (`role` command). */
  role(): { active: boolean; token: number; node: string; engine: string } {
    return { active: this.active, token: this.lease ? this.lease.token : 0, node: this.nodeName, engine: this.engine.kind };
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.collectTimer) clearInterval(this.collectTimer);
    await this.down?.drain(1000);
    await this.replies?.drain(500);
    this.down?.close();
    this.replies?.close();
    for (const s of [this.xsub, this.xpub, this.router]) s?.close();
    await Promise.allSettled(this.loops);
    await Promise.allSettled(this.links.splice(0).map((l) => l.release()));
    this.xsub = this.xpub = this.router = null;
    // A graceful stop hands the lease over at once.
    await this.lease?.stop();
    await this.engine.stop();
    this.log.info('director stopped');
  }

  /**
   * Sequence and send a channel message. `dataJson` must be valid JSON text.
   * With the redis engine the answer is a promise that resolves once the
   * message is stored in Redis and handed to the send queue, in offset order.
   */
  publishChannel(channel: string, dataJson: string, sender: string | null, noHistory: boolean): MaybePromise<PublishOutcome> {
    const problem = channelProblem(channel);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    if (!this.active || !this.down) throw new TidingsError(this.stopping ? ErrorCodes.UNAVAILABLE : ErrorCodes.NOT_ACTIVE);
    const now = Date.now();
    const { head, tail } = messagePushParts(channel, sender, now, dataJson);
    const r = this.engine.append({ channel, head, tail, now, store: !noHistory, limits: this.historyLimits(channel) });
    if (!(r instanceof Promise)) {
      this.sendDown([channelTopic(channel), encodeHeader(DownKind.Message, r.offset, r.epoch), r.push ?? Buffer.from(assemblePush(head, r.offset, r.epoch, tail))]);
      this.publishedChannel++;
      return { offset: r.offset, epoch: r.epoch };
    }
    this.inFlight++;
    return r.then(
      (pos) => {
        this.settled();
        // Stored: it goes down even if the lease was lost meanwhile (it is part of the stream either way).
        this.sendDown([channelTopic(channel), encodeHeader(DownKind.Message, pos.offset, pos.epoch), Buffer.from(assemblePush(head, pos.offset, pos.epoch, tail))]);
        this.publishedChannel++;
        return { offset: pos.offset, epoch: pos.epoch };
      },
      (err: unknown) => {
        this.settled();
        throw err;
      },
    );
  }

  private settled(): void {
    this.inFlight--;
    if (this.inFlightWaiters.length > 0 && this.inFlight < MAX_IN_FLIGHT / 2) for (const w of this.inFlightWaiters.splice(0)) w();
  }

  publishUser(user: string, dataJson: string, sender: string | null): void {
    if (!isValidUser(user)) throw new TidingsError(ErrorCodes.INVALID_USER, 'user must be 1-200 characters without control characters');
    const push = encodeDirectPush(user, sender, Date.now(), dataJson);
    this.sendDown([userTopic(user), encodeHeader(DownKind.Direct, 0, ''), push]);
    this.published.inc({ target: 'user' });
  }

  /** Send a probe down a topic, so an edge learns its subscription is live and where the stream stands. */
  probe(kind: 'channel' | 'user', name: string, token: string): MaybePromise<PublishOutcome> {
    const body = Buffer.from(JSON.stringify({ token }));
    if (kind === 'channel') {
      const problem = channelProblem(name);
      if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
      if (!this.active) throw new TidingsError(ErrorCodes.NOT_ACTIVE);
      const send = (pos: StreamPosition): PublishOutcome => {
        this.sendDown([channelTopic(name), encodeHeader(DownKind.Probe, pos.offset, pos.epoch), body]);
        return { offset: pos.offset, epoch: pos.epoch };
      };
      // Asked through the engine like appends, so the probe goes down after every message sequenced before it.
      const pos = this.engine.position(name, Date.now());
      return pos instanceof Promise ? pos.then(send) : send(pos);
    }
    if (!isValidUser(name)) throw new TidingsError(ErrorCodes.INVALID_USER);
    this.sendDown([userTopic(name), encodeHeader(DownKind.Probe, 0, ''), body]);
    return { offset: 0, epoch: '' };
  }

  /** Send an unsequenced event (presence, state) to a channel's listeners, skipping `exceptUser`'s connections. */
  channelEvent(channel: string, exceptUser: string | null, body: Buffer): void {
    this.sendDown([channelTopic(channel), encodeHeader(DownKind.ChannelEvent, 0, exceptUser ?? ''), body]);
  }

  /** Send a control message to edges on a topic. */
  control(topic: Buffer, body: unknown): void {
    this.sendDown([topic, encodeHeader(DownKind.Control, 0, ''), Buffer.from(JSON.stringify(body))]);
  }

  reply(frames: Buffer[]): void {
    if (!this.replies?.push(frames)) this.log.warn('command reply queue full; reply dropped, the caller will time out');
  }

  get downQueue(): SendQueue | null {
    return this.down;
  }

  private sendDown(frames: Buffer[]): void {
    if (!this.down) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'director stopped');
    // Nodes disconnect a director that sends more than their limit: refuse it here instead.
    if (frames[2]!.length > this.frameLimit) throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${frames[2]!.length} bytes > the node link limit ${this.frameLimit}`);
    if (!this.down.push(frames)) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'director send queue full');
  }

  private handleInbound(frames: Buffer[]): void {
    try {
      let total = 0;
      for (const f of frames) total += f.length;
      if (total > this.config.max_message_size) {
        throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${total} bytes > max_message_size ${this.config.max_message_size}`);
      }
      const p = parsePublish(frames);
      let parsed: unknown;
      try {
        parsed = JSON.parse(p.data);
      } catch {
        throw new TidingsError(ErrorCodes.INVALID_JSON, `payload for ${p.target} ${JSON.stringify(p.name.slice(0, 64))} is not JSON`);
      }
      let sender = p.sender;
      if (p.omnibus && parsed && typeof parsed === 'object' && typeof (parsed as Record<string, unknown>)['sender'] === 'string') {
        sender = (parsed as Record<string, string>)['sender']!;
      }
      if (p.target === 'channel') {
        const r = this.publishChannel(p.name, p.data, sender, p.noHistory);
        if (r instanceof Promise) r.catch((err: unknown) => this.rejectInbound(err));
      } else this.publishUser(p.name, p.data, sender);
    } catch (err) {
      this.rejectInbound(err);
    }
  }

  private rejectInbound(err: unknown): void {
    const code = err instanceof TidingsError ? err.code : err instanceof WireError ? ErrorCodes.BAD_REQUEST.code : ErrorCodes.INTERNAL.code;
    this.rejected.inc({ code: String(code) });
    // A PUB socket has no way back to the worker: the rejection is logged with its code.
    this.log.warn({ code, err: (err as Error).message }, 'rejected a message on the publisher address');
  }

  private async publishLoop(xsub: XSubscriber): Promise<void> {
    try {
      for await (const frames of xsub) {
        this.handleInbound(frames as Buffer[]);
        if (this.down!.full) await this.down!.space();
        if (this.inFlight >= MAX_IN_FLIGHT) await new Promise<void>((r) => this.inFlightWaiters.push(r));
      }
    } catch (err) {
      if (!this.stopping) this.log.error({ err }, 'publisher loop failed');
    }
  }

  private async subscriptionLoop(xpub: XPublisher): Promise<void> {
    try {
      for await (const [msg] of xpub) {
        if (!msg || msg.length < 1) continue;
        const key = msg.subarray(1).toString('latin1');
        if (msg[0] === 1) this.heldTopics.add(key);
        else if (msg[0] === 0) this.heldTopics.delete(key);
      }
    } catch (err) {
      if (!this.stopping) this.log.error({ err }, 'subscription loop failed');
    }
  }

  private async commandLoop(router: Router): Promise<void> {
    try {
      for await (const frames of router) {
        if (frames.length < 4) continue;
        const route = frames.slice(0, frames.length - 3) as Buffer[];
        const [id, method, body] = frames.slice(frames.length - 3) as [Buffer, Buffer, Buffer];
        const name = method.toString('utf8');
        // A standby answers only `role`: forwarders ask every director which one is active.
        const run = name === 'role' ? Promise.resolve(this.role()) : this.active ? this.handlers.dispatch(name, body) : Promise.reject(new TidingsError(ErrorCodes.NOT_ACTIVE));
        void run.then(
          (result) => {
            const json = Buffer.from(JSON.stringify(result ?? null));
            if (json.length <= this.frameLimit) return this.reply([...route, id, Buffer.from('ok'), json]);
            // The caller's socket would drop this link for a larger frame: answer with the error instead.
            const e = new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `reply of ${json.length} bytes > the node link limit ${this.frameLimit}; ask for less`);
            this.log.warn({ method: name.slice(0, 64), bytes: json.length }, 'command reply too large for the link');
            this.reply([...route, id, Buffer.from('error'), Buffer.from(JSON.stringify(e.toBody()))]);
          },
          (err: unknown) => {
            const e = err instanceof TidingsError ? err : new TidingsError(ErrorCodes.INTERNAL);
            if (!(err instanceof TidingsError)) this.log.error({ err }, 'command failed');
            this.reply([...route, id, Buffer.from('error'), Buffer.from(JSON.stringify(e.toBody()))]);
          },
        );
      }
    } catch (err) {
      if (!this.stopping) this.log.error({ err }, 'command loop failed');
    }
  }

  isChannelHeld(name: string): boolean {
    if (this.heldTopics.has(channelTopic(name).toString('latin1'))) return true;
    for (const hold of this.channelHolds) if (hold(name)) return true;
    return false;
  }

  /** Collect idle channels, then the state features keep beside them. */
  collect(): number {
    const now = Date.now();
    const removed = this.channels.collect(now, this.collectIdleMs, (name) => this.isChannelHeld(name));
    for (const c of this.collectors) c(now);
    if (removed > 0) this.log.debug({ removed }, 'collected idle channels');
    return removed;
  }
}

