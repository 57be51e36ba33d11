/**
 * The director: sequences every channel message (offset, epoch), keeps the
 * channel state and answers commands. Publishes arrive on the publisher
 * address (XSUB), stamped pushes leave on the subscriber address (XPUB), which
 * only forwards a topic to nodes that subscribed to it.
 *
 * Where sequences and history live is the state engine's (engine/): memory
 * (this process) or redis (several directors, one active by lease). With
 * redis a director stands by until it holds the lease: it binds only its
 * command address (answering `role`, everything else 155) and binds the
 * publisher and subscriber addresses once it becomes active.
 */
import { randomBytes } from 'node:crypto';
import { XPublisher, XSubscriber, Router } from 'zeromq';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { carriedChannelProblem, carriedUserProblem, channelProblem, isValidUser } from '../protocol/names.js';
import { SendQueue, collectGrowth } from '../zmq/send-queue.js';
import { bindSecured, linkLimit, type BoundLink } from '../zmq/security.js';
import { channelTopic, userTopic } from '../cluster/topics.js';
import { DownKind, encodeHeader, parsePublish, WireError, type InboundPublish } from '../cluster/wire.js';
import { TICK_INTERVAL_MS, positionIn, tickFrames } from '../cluster/ticks.js';
import { DOWN_BATCH_BYTES, downPipeSlots, pipeSlots, queueBytes, decodeCommandBatch, isBatchFrames, isPublishBatch, PublishEntryReader, PUBLISH_BATCH_METHOD, PUBLISH_TEXT_METHOD } from '../cluster/batch.js';
import { DownBatcher } from './down-batcher.js';
import { ReplyBatcher, routeKey } from './reply-batcher.js';
import { ChannelRegistry } from './channels.js';
import { HistoryBudget } from './history.js';
import { EncodedReply } from './encoded-reply.js';
import { MAX_PAYLOAD_DEPTH, NOT_JSON, checkJsonTextDepth, scanJsonBytes, scanJsonText, scannedBytes } from '../protocol/payload.js';
import { LogLimiter, LoopGuard } from '../runtime/loop-guard.js';
import { encodeDirectPush, messagePushParts, assemblePush, MessagePushBytes } from './push-encoding.js';
import { CommandHandlers } from './commands.js';
import type { HistoryLimits } from './history.js';
import type { MaybePromise, StateEngine, StreamPosition } from './engine/engine.js';
import { MemoryEngine } from './engine/memory-engine.js';
import { RedisEngine, createRedisClient } from './engine/redis-engine.js';
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
const OK = Buffer.from('ok');
/** Commands that publish: their refusals are counted with the publisher address' ones. */
const ERROR = Buffer.from('error');
const PUBLISH_COMMANDS = new Set(['publish', PUBLISH_TEXT_METHOD, PUBLISH_BATCH_METHOD, 'cs_message']);

/** How a command is answered: (true, [result JSON, raw frames...]) or (false, [error body JSON]). */
type Answer = (ok: boolean, parts: Buffer[]) => void;

export class Director {
  private xsub: XSubscriber | null = null;
  private xpub: XPublisher | null = null;
  private router: Router | null = null;
  private down: SendQueue | null = null;
  /** Channel messages of a turn go down batched per channel (down-batcher.ts). */
  private batcher: DownBatcher | null = null;
  private replies: SendQueue | null = null;
  /** Replies to batched commands leave batched per caller. */
  private readonly replyBatcher = new ReplyBatcher((frames) => this.reply(frames));
  readonly channels: ChannelRegistry;
  /** This director's incarnation: edges that see it change know the director restarted. */
  readonly instance = randomBytes(9).toString('base64url');
  /** Topics some node holds a subscription to, as XPUB reports them. */
  readonly heldTopics = new Set<string>();
  private running: Promise<void>[] = [];
  private links: BoundLink[] = [];
  private collectTimer: NodeJS.Timeout | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  /** This run of the director, in its ticks; and the next tick's number (given as a tick is sent). */
  private readonly run = randomBytes(6).toString('base64url');
  private tickSeq = 0;
  private stopping = false;
  /** The command table; features add their commands with `handlers.register`. */
  readonly handlers: CommandHandlers;
  /** Extra reasons to keep a channel's state (e.g. presence members); checked by collection. */
  readonly channelHolds: Array<(channel: string) => boolean> = [];
  /** Run after each channel collection, to collect state kept beside the channels. */
  readonly collectors: Array<(now: number) => void> = [];
  /**
   * Told of every push sent down a channel (message or event) or to a user,
   * after it was queued for sending (channelstream catch-up keeps what a
   * connection away from its node would have received).
   */
  readonly pushObservers: Array<(kind: 'channel' | 'user', name: string, push: Buffer, exceptUser: string | null) => void> = [];
  private readonly published: Counter<'target'>;
  /** Channel messages sent since the last scrape, added to `published` when collected (keeps label hashing off the hot path). */
  private publishedChannel = 0;
  private readonly rejected: Counter<'code' | 'door'>;
  /** A worker sending bad messages in a loop is logged once per code per 10 s, counted always. */
  private readonly rejectionLogs = new LogLimiter();
  /** One bad item is counted and skipped; a loop that dies calls `onFatal`. */
  readonly loops: LoopGuard;
  /** Set by the node: a serving loop died, end the process (its supervisor restarts it). */
  onFatal: (reason: string) => void = () => undefined;

  /** Channels idle this long with no listener and no history are collected (channel_idle_timeout). */
  private readonly collectIdleMs: number;
  /** Largest frame the director sends: what every node's connecting socket accepts. */
  private readonly frameLimit: number;
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
  /**
   * The last channel name that passed the carried (publishChannel) and the native (publisher address) rules:
   * a small room's publishes name the same channel one after another, checked once.
   */
  private carriedChecked: string | null = null;
  private nativeChecked: string | null = null;
  /** Writes the pushes of the byte path (publishBytes), keeping the pieces a run of one channel's publishes shares. */
  private readonly pushBytes = new MessagePushBytes();
  private inFlightWaiters: Array<() => void> = [];
  private readonly nodeName: string;
  /** The lease's own Redis connection (redis engine). */
  private leaseRedis: Redis | null = null;
  /** Set once the lease is lost: the publish and subscription loops end then without being deaths. */
  private wasFenced = false;

  constructor(
    readonly config: Config,
    readonly log: Logger,
    registry: Registry,
  ) {
    this.collectIdleMs = config.channel_idle_timeout * 1000;
    this.frameLimit = linkLimit(config);
    const defaults: HistoryLimits = Object.freeze({ maxCount: config.history_size, maxAgeMs: config.history_ttl * 1000, maxBytes: config.history_channel_bytes });
    this.channels = new ChannelRegistry(defaults, new HistoryBudget(config.history_total_bytes));
    this.historyLimits = () => defaults;
    this.nodeName = config.node_id ?? `director-${process.pid}`;
    this.loops = new LoopGuard(registry, log, (loop, err) => this.onFatal(`${loop} loop died: ${err instanceof Error ? err.message : String(err)}`));
    if (config.state_engine === 'redis') {
      const engine = new RedisEngine({
        url: config.redis_url,
        prefix: config.redis_prefix,
        keepMs: Math.max(REDIS_KEEP_MS, this.collectIdleMs),
        totalBytes: config.history_total_bytes,
        replicasAck: config.redis_replicas_ack,
        replicasTimeoutMs: Math.min(1000, Math.round(config.director_lease * 500)),
        log: log.child({ component: 'redis-engine' }),
      });
      this.engine = engine;
      const leaseMs = Math.round(config.director_lease * 1000);
      // The lease has a connection of its own: a renewal never waits behind appends and history reads.
      const leaseRedis = createRedisClient(config.redis_url, 'tidings-lease');
      leaseRedis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection error (lease)'));
      this.leaseRedis = leaseRedis;
      this.lease = new DirectorLease({
        redis: leaseRedis,
        prefix: config.redis_prefix,
        node: this.nodeName,
        leaseMs,
        pollMs: Math.max(50, Math.min(250, Math.round(leaseMs / 8))),
        log: log.child({ component: 'lease' }),
        failed: (err) => this.loops.failed('director-lease', err),
      });
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
      help: 'Publishes the director refused, by error code and door (publisher address, or the publish commands of the command address)',
      labelNames: ['code', 'door'],
      registers: [registry],
    });
    new Counter({
      name: 'tidings_director_shed_total',
      help: 'Sends that went on without nodes that stayed at their high-water mark longer than twice zmq_block_timeout (their edges see a gap); libzmq then skips such a node for every send until it has read its backlog down, so it misses more than this count',
      registers: [registry],
      collect: collectGrowth(() => this.down?.shed ?? 0),
    });
    const sendQueues = (): SendQueue[] => [this.down, this.replies].filter((q): q is SendQueue => q !== undefined && q !== null);
    new Gauge({
      name: 'tidings_director_queued_messages',
      help: 'Messages (or batches) waiting in the director to be handed to ZeroMQ, by queue (director-down: to the nodes, director-replies: command replies): a queue that stays full is a node that does not keep up',
      labelNames: ['queue'],
      registers: [registry],
      collect() {
        for (const q of sendQueues()) this.set({ queue: q.name }, q.length);
      },
    });
    const channels = this.channels;
    const budget = channels.budget;
    // Memory: the director's own budget. Redis: the engine's totals (asked of Redis at each scrape, by the active director).
    const engine = this.engine;
    const totals = async (): Promise<{ bytes: number; messages: number; evicted: number }> => {
      if (!(engine instanceof RedisEngine)) return { bytes: budget.used, messages: budget.count, evicted: budget.evicted };
      if (!this.active) return { bytes: 0, messages: 0, evicted: 0 };
      return engine.totals().catch(() => ({ bytes: 0, messages: 0, evicted: 0 }));
    };
    new Gauge({
      name: 'tidings_director_history_bytes',
      help: 'Bytes charged by the history of every channel (pushes plus per-message bookkeeping; bound: history_total_bytes)',
      registers: [registry],
      async collect() {
        this.set((await totals()).bytes);
      },
    });
    new Gauge({
      name: 'tidings_director_history_messages',
      help: 'Messages kept in the history of every channel',
      registers: [registry],
      async collect() {
        this.set((await totals()).messages);
      },
    });
    new Counter({
      name: 'tidings_director_history_evicted_total',
      help: 'History messages removed before their time because history_total_bytes was reached',
      registers: [registry],
      async collect() {
        const { evicted } = await totals();
        this.reset();
        this.inc(evicted);
      },
    });
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
    // Ticks go down only while this director is active (a standby has no down queue).
    this.tickTimer = setInterval(() => this.tick(), TICK_INTERVAL_MS);
    this.tickTimer.unref();
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
    this.running.push(this.commandLoop(this.router));
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
    // Batches reach DOWN_BATCH_BYTES down and MAX_BATCH_BYTES up: the pipes carrying them hold as many bytes as `hwm`
    // 2 KB batches (downPipeSlots, pipeSlots).
    this.xpub = new XPublisher({ sendHighWaterMark: downPipeSlots(hwm), receiveHighWaterMark: hwm, noDrop: true, linger: 0 });
    this.xsub = new XSubscriber({ receiveHighWaterMark: pipeSlots(hwm), sendHighWaterMark: hwm, linger: 0 });
    this.links.push(await bindSecured(this.xpub, this.config.subscriber_address, 'subscriber', this.config, this.log));
    this.links.push(await bindSecured(this.xsub, this.config.publisher_address, 'publisher', this.config, this.log));
    // XSUB: subscribe to everything published to us.
    await this.xsub.send(Buffer.from([1]));
    // A node that stops reading holds the director back at most twice zmq_block_timeout (then its edges see a gap):
    // longer than a forwarder waits for one of its edges, so a stalled edge costs its node nothing.
    // Each message sent without a full node is followed by a tick sent without it too (see tickFrames).
    this.down = new SendQueue(this.xpub, hwm, this.log, 'director-down', {
      maxBytes: queueBytes(hwm),
      maxBlockMs: 2 * this.config.zmq_block_timeout * 1000,
      markShed: (shed) => tickFrames(this.run, this.tickSeq++, positionIn(shed)),
    });
    this.batcher = new DownBatcher(this.down, Math.min(DOWN_BATCH_BYTES, this.frameLimit));
    for (const f of this.events.onActive) await f();
    this.active = true;
    this.running.push(this.publishLoop(this.xsub), this.subscriptionLoop(this.xpub));
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
    this.wasFenced = true;
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
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.batcher?.flush();
    this.replyBatcher.flush();
    await this.down?.drain(1000);
    await this.replies?.drain(500);
    this.down?.close();
    this.replies?.close();
    for (const s of [this.xsub, this.xpub, this.router]) s?.close();
    await Promise.allSettled(this.running);
    await Promise.allSettled(this.links.splice(0).map((l) => l.release()));
    this.xsub = this.xpub = this.router = null;
    // A graceful stop hands the lease over at once.
    await this.lease?.stop();
    this.leaseRedis?.disconnect(false);
    await this.engine.stop();
    this.log.info('director stopped');
  }

  /**
   * Sequence and send a channel message. `dataJson` must be valid JSON text.
   * With the redis engine the answer is a promise that resolves once the
   * message is stored in Redis and handed to the send queue, in offset order.
   */
  publishChannel(channel: string, dataJson: string, sender: string | null, noHistory: boolean): MaybePromise<PublishOutcome> {
    this.checkPublishable(channel);
    const now = Date.now();
    const { head, tail } = messagePushParts(channel, sender, now, dataJson);
    const r = this.engine.append({ channel, head, tail, now, store: !noHistory, limits: this.historyLimits(channel) });
    if (!(r instanceof Promise)) return this.sent(channel, r.offset, r.epoch, r.push ?? Buffer.from(assemblePush(head, r.offset, r.epoch, tail)));
    this.inFlight++;
    return r.then(
      (pos) => {
        this.settled();
        // The local registry keeps when the channel was last used (channel configs and channelstream's
        // uuid live as long as it); its sequence and history are the engine's.
        this.channels.getOrCreate(channel, now).lastActive = now;
        // Stored: it goes down even if the lease was lost meanwhile (it is part of the stream either way).
        return this.sent(channel, pos.offset, pos.epoch, Buffer.from(assemblePush(head, pos.offset, pos.epoch, tail)));
      },
      (err: unknown) => {
        this.settled();
        throw err;
      },
    );
  }

  /** A channel's name passes the carried rules, and this director sequences. */
  private checkPublishable(channel: string): void {
    if (channel !== this.carriedChecked) {
      const problem = carriedChannelProblem(channel);
      if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
      this.carriedChecked = channel;
    }
    if (!this.active || !this.down) throw new TidingsError(this.stopping ? ErrorCodes.UNAVAILABLE : ErrorCodes.NOT_ACTIVE);
  }

  private sent(channel: string, offset: number, epoch: string, push: Buffer): PublishOutcome {
    this.queueSent(channel, offset, epoch, push);
    return { offset, epoch };
  }

  /** A sequenced message goes down (batched) and to the push observers. */
  private queueSent(channel: string, offset: number, epoch: string, push: Buffer, framed = false): void {
    this.sendMessage(channel, offset, epoch, push, framed);
    this.publishedChannel++;
    for (const o of this.pushObservers) o('channel', channel, push, null);
  }

  private settled(): void {
    this.inFlight--;
    if (this.inFlightWaiters.length > 0 && this.inFlight < MAX_IN_FLIGHT / 2) for (const w of this.inFlightWaiters.splice(0)) w();
  }

  publishUser(user: string, dataJson: string, sender: string | null): void {
    const problem = carriedUserProblem(user);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_USER, problem);
    const push = encodeDirectPush(user, sender, Date.now(), dataJson);
    this.sendDown([userTopic(user), encodeHeader(DownKind.Direct, 0, ''), push]);
    for (const o of this.pushObservers) o('user', user, push, null);
    this.published.inc({ target: 'user' });
  }

  /** Send a probe down a topic, so an edge learns its subscription is live and where the stream stands. */
  probe(kind: 'channel' | 'user', name: string, token: string): MaybePromise<PublishOutcome> {
    const body = Buffer.from(JSON.stringify({ token }));
    if (kind === 'channel') {
      const problem = carriedChannelProblem(name);
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
    if (carriedUserProblem(name)) throw new TidingsError(ErrorCodes.INVALID_USER);
    this.sendDown([userTopic(name), encodeHeader(DownKind.Probe, 0, ''), body]);
    return { offset: 0, epoch: '' };
  }

  /** Send an unsequenced event (presence, state) to a channel's listeners, skipping `exceptUser`'s connections. */
  channelEvent(channel: string, exceptUser: string | null, body: Buffer): void {
    this.sendDown([channelTopic(channel), encodeHeader(DownKind.ChannelEvent, 0, exceptUser ?? ''), body]);
    for (const o of this.pushObservers) o('channel', channel, body, exceptUser);
  }

  /**
   * The next tick to every edge; skipped while the down queue is full. It is
   * numbered when sent, so numbers go down in a row (shed markers take theirs
   * between two ticks): only an edge that missed one sees a number skipped.
   */
  private tick(): void {
    if (this.active) this.down?.push(() => tickFrames(this.run, this.tickSeq++));
  }

    /** Send a control message to edges on a topic. */
  control(topic: Buffer, body: unknown): void {
    this.sendDown([topic, encodeHeader(DownKind.Control, 0, ''), Buffer.from(JSON.stringify(body))]);
  }

  /**
   * A reply sent alone: the batched replies still waiting for the end of the
   * turn go first, so a caller gets its replies in the order they were made
   * (an acknowledged publisher sees its offsets in order).
   */
  private replyInOrder(frames: Buffer[]): void {
    this.replyBatcher.flush();
    this.reply(frames);
  }

  reply(frames: Buffer[]): void {
    if (!this.replies?.push(frames)) this.log.warn('command reply queue full; reply dropped, the caller will time out');
  }


  get downQueue(): SendQueue | null {
    return this.down;
  }

  private sendDown(frames: Buffer[]): void {
    if (!this.batcher) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'director stopped');
    // Nodes disconnect a director that sends more than their limit: refuse it here instead.
    if (frames[2]!.length > this.frameLimit) throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${frames[2]!.length} bytes > the node link limit ${this.frameLimit}`);
    if (!this.batcher.other(frames)) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'director send queue full');
  }

  /** A sequenced channel message, batched with the channel's others of this turn. */
  private sendMessage(channel: string, offset: number, epoch: string, push: Buffer, framed: boolean): void {
    if (!this.batcher) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'director stopped');
    if (push.length > this.frameLimit) throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${push.length} bytes > the node link limit ${this.frameLimit}`);
    // The topic is made when a batch starts (no closure per message).
    this.batcher.message(channel, channelTopic, offset, epoch, push, framed);
  }

  /**
   * A publish batch from the publisher address: each publish is checked and
   * sequenced on its own, as if it had come alone, and waits for room in the
   * send queue as a lone message does (a batch never overfills it).
   */
  private async handleInboundBatch(body: Buffer): Promise<void> {
    let batch: PublishEntryReader;
    try {
      batch = new PublishEntryReader(body);
    } catch (err) {
      this.rejectInbound(err);
      return;
    }
    while (batch.next()) {
      if (this.batcher!.full) await this.batcher!.space();
      // The redis engine: at most MAX_IN_FLIGHT appends wait for Redis, batch or not.
      if (this.inFlight >= MAX_IN_FLIGHT) await new Promise<void>((r) => this.inFlightWaiters.push(r));
      try {
        if (batch.bytes > this.config.max_message_size) throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${batch.bytes} bytes > max_message_size ${this.config.max_message_size}`);
        if (this.publishBytes(batch) === null) this.publishInbound(batch.toPublish());
      } catch (err) {
        this.rejectInbound(err);
      }
    }
  }

  /**
   * The byte path of a publish entry (publisher address batches, an edge's
   * publish_text) to a channel of the memory engine: the data is checked as
   * bytes (scanJsonBytes) and the push written from them straight into
   * history memory, never made into text. Null when it does not apply: a
   * user, the redis engine (its Lua takes text), or data the byte check does
   * not accept (not JSON, too deep, not UTF-8); the caller then takes the
   * entry as text, exactly as before (its refusal, or for bytes that are not
   * UTF-8 the push with U+FFFD in their place). Otherwise the writer, which
   * holds the message's offset and epoch until the next call. `now`: the
   * message's time (an edge's publish batch is sequenced at one time, read
   * once for the batch).
   */
  publishBytes(e: PublishEntryReader, now = Date.now()): MessagePushBytes | null {
    const engine = this.engine;
    if (!e.isChannel || engine.appendBytes === undefined) return null;
    const depth = scanJsonBytes(e.body, e.dataStart, e.dataEnd);
    if (depth < 0 || depth > MAX_PAYLOAD_DEPTH) return null;
    const channel = e.name();
    if (channel !== this.nativeChecked) {
      const problem = channelProblem(channel);
      if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
      this.nativeChecked = channel;
    }
    this.checkPublishable(channel);
    const w = this.pushBytes;
    w.message(channel, e.sender(), now, e.body, e.dataStart, e.dataEnd, scannedBytes.lineBreak);
    const push = engine.appendBytes(channel, now, !e.noHistory, this.historyLimits(channel), w);
    this.queueSent(channel, w.offset, w.epoch, push, w.framed);
    return w;
  }

  private handleInbound(frames: Buffer[]): void {
    try {
      let total = 0;
      for (const f of frames) total += f.length;
      if (total > this.config.max_message_size) {
        throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${total} bytes > max_message_size ${this.config.max_message_size}`);
      }
      this.publishInbound(parsePublish(frames));
    } catch (err) {
      this.rejectInbound(err);
    }
  }

  /** One publish from the publisher address: its data must be JSON within the depth limit. */
  private publishInbound(p: InboundPublish): void {
    // The door of every ZeroMQ publisher: JSON, and nothing deeper than every subscriber's encoder takes gets
    // in. Checked in one pass over the text, which is sequenced as it is: not parsed (objects for the collector).
    const depth = scanJsonText(p.data);
    if (depth === NOT_JSON || depth > MAX_PAYLOAD_DEPTH) {
      checkJsonTextDepth(p.data); // too deep, JSON or not: refused as too deep (the depth is checked first)
      throw new TidingsError(ErrorCodes.INVALID_JSON, `payload for ${p.target} ${JSON.stringify(p.name.slice(0, 64))} is not JSON`);
    }
    let sender = p.sender;
    if (p.omnibus) {
      const parsed: unknown = JSON.parse(p.data);
      if (parsed && typeof parsed === 'object' && typeof (parsed as Record<string, unknown>)['sender'] === 'string') sender = (parsed as Record<string, string>)['sender']!;
    }
    // ZeroMQ publishes are native: they name channels and users by the native rules (docs/protocol.md).
    if (p.target === 'channel') {
      if (p.name !== this.nativeChecked) {
        const problem = channelProblem(p.name);
        if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
        this.nativeChecked = p.name;
      }
      const r = this.publishChannel(p.name, p.data, sender, p.noHistory);
      if (r instanceof Promise) r.catch((err: unknown) => this.rejectInbound(err));
    } else {
      if (!isValidUser(p.name)) throw new TidingsError(ErrorCodes.INVALID_USER, 'user must be 1-200 characters without control characters');
      this.publishUser(p.name, p.data, sender);
    }
  }

  private rejectInbound(err: unknown): void {
    const code = err instanceof TidingsError ? err.code : err instanceof WireError ? ErrorCodes.BAD_REQUEST.code : ErrorCodes.INTERNAL.code;
    this.rejected.inc({ code: String(code), door: 'publisher' });
    // A PUB socket has no way back to the worker: the rejection is logged with its code.
    const { log, skipped } = this.rejectionLogs.take(String(code));
    if (log) this.log.warn({ code, err: (err as Error).message, ...(skipped > 0 ? { notLogged: skipped } : {}) }, 'rejected a message on the publisher address');
  }

  private publishLoop(xsub: XSubscriber): Promise<void> {
    return this.loops.run(
      'director-publish',
      xsub,
      (frames) => {
        if (isPublishBatch(frames as Buffer[])) return this.handleInboundBatch((frames as Buffer[])[1]!);
        this.handleInbound(frames as Buffer[]);
        if (this.batcher!.full) return this.batcher!.space();
        // The redis engine: at most MAX_IN_FLIGHT appends wait for Redis before reading goes on.
        if (this.inFlight >= MAX_IN_FLIGHT) return new Promise<void>((r) => this.inFlightWaiters.push(r));
        return undefined;
      },
      () => this.stopping || this.wasFenced,
    );
  }

  private subscriptionLoop(xpub: XPublisher): Promise<void> {
    return this.loops.run(
      'director-subscriptions',
      xpub,
      ([msg]) => {
        if (!msg || msg.length < 1) return;
        const key = msg.subarray(1).toString('latin1');
        if (msg[0] === 1) this.heldTopics.add(key);
        else if (msg[0] === 0) this.heldTopics.delete(key);
      },
      () => this.stopping || this.wasFenced,
    );
  }

  private commandLoop(router: Router): Promise<void> {
    return this.loops.run('director-commands', router, (frames) => this.onCommand(frames as Buffer[]), () => this.stopping);
  }

  /** One command, or a batch of them from one caller. */
  private onCommand(frames: Buffer[]): void {
    if (frames.length < 4) return;
    const route = frames.slice(0, frames.length - 3);
    const [id, method, body] = frames.slice(frames.length - 3) as [Buffer, Buffer, Buffer];
    if (isBatchFrames(id, method)) {
      this.commandBatch(route, body);
      return;
    }
    this.command(method.toString('utf8'), body, (ok, parts) => this.replyInOrder([...route, id, ok ? OK : ERROR, ...parts]));
  }

  /**
   * Run one command and answer it with (true, [result JSON, raw frames...])
   * or (false, [error body JSON]): its failure, even in encoding the reply,
   * is answered and counted, never thrown.
   */
  private command(method: string, body: Buffer, answer: Answer): void {
    // A standby answers only `role`: forwarders ask every director which one is active.
    let result: unknown;
    let refused = false;
    try {
      if (method === 'role') result = this.role();
      else if (this.active) result = this.handlers.dispatch(method, body);
      else throw new TidingsError(ErrorCodes.NOT_ACTIVE);
    } catch (err) {
      result = err;
      refused = true;
    }
    // A result or refusal at hand (a publish to the memory engine) is answered at once, in the order the commands
    // came, without a promise; a promise (the redis engine, history reads) is answered when it settles.
    // (Methods, not closures made per command: a publish is answered here, tens of thousands a second.)
    if (!(result instanceof Promise)) {
      try {
        if (refused) this.commandFailed(method, result, answer);
        else this.commandDone(method, result, answer);
      } catch (err) {
        this.loops.failed('director-commands', err);
      }
      return;
    }
    result
      .then(
        (r: unknown) => this.commandDone(method, r, answer),
        (err: unknown) => this.commandFailed(method, err, answer),
      )
      .catch((err) => this.loops.failed('director-commands', err));
  }

  /**
   * A publish refused inside a publish_batch: counted and logged as a refused publish command is
   * (commandFailed); its error body, the entry's outcome.
   */
  publishRefusal(err: unknown): Buffer {
    const e = err instanceof TidingsError ? err : new TidingsError(ErrorCodes.INTERNAL);
    this.rejected.inc({ code: String(e.code), door: 'command' });
    if (!(err instanceof TidingsError)) this.log.error({ err, method: PUBLISH_BATCH_METHOD }, 'command failed');
    return Buffer.from(JSON.stringify(e.toBody()));
  }

  private commandFailed(method: string, err: unknown, answer: Answer): void {
    const e = err instanceof TidingsError ? err : new TidingsError(ErrorCodes.INTERNAL);
    // Publishes refused here passed no other door (an edge refuses what it sees first): counted.
    if (PUBLISH_COMMANDS.has(method)) this.rejected.inc({ code: String(e.code), door: 'command' });
    if (!(err instanceof TidingsError)) this.log.error({ err, method: method.slice(0, 64) }, 'command failed');
    answer(false, [Buffer.from(JSON.stringify(e.toBody()))]);
  }

  private commandDone(method: string, result: unknown, answer: Answer): void {
    // An encoded result (a history page) is its body and the raw pushes after it.
    let parts: Buffer[];
    try {
      parts = result instanceof EncodedReply ? [result.body, ...result.frames] : [Buffer.from(JSON.stringify(result ?? null))];
    } catch (err) {
      this.loops.failed('director-replies', err, { method: method.slice(0, 64) });
      this.commandFailed(method, new TidingsError(ErrorCodes.INTERNAL, 'the reply could not be encoded'), answer);
      return;
    }
    let largest = 0;
    for (const f of parts) largest = Math.max(largest, f.length);
    if (largest <= this.frameLimit) {
      answer(true, parts);
      return;
    }
    // The caller's socket would drop this link for a larger frame: answer with the error instead.
    const e = new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `reply frame of ${largest} bytes > the node link limit ${this.frameLimit}; ask for less`);
    this.log.warn({ method: method.slice(0, 64), bytes: largest }, 'command reply too large for the link');
    answer(false, [Buffer.from(JSON.stringify(e.toBody()))]);
  }

  /**
   * A batch of commands from one caller: each runs as if it came alone. A
   * reply of one body goes back in a reply batch; one with raw frames after
   * its body (a history page) goes alone, in the plain form.
   */
  private commandBatch(route: Buffer[], body: Buffer): void {
    let entries;
    try {
      entries = decodeCommandBatch(body);
    } catch (err) {
      // No request id to answer: the caller's requests time out, as for any frame it could not have sent.
      this.loops.failed('director-commands', err, { batch: true });
      return;
    }
    const key = routeKey(route);
    for (const e of entries) {
      this.command(e.method, e.body, (ok, parts) => {
        if (parts.length === 1) return this.replyBatcher.add(route, e.id, ok, parts[0]!, key);
        const id = Buffer.allocUnsafe(4);
        id.writeUInt32BE(e.id);
        this.replyInOrder([...route, id, ok ? OK : ERROR, ...parts]);
      });
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

