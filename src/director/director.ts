/**
 * The director: sequences every channel message (offset, epoch), keeps the
 * channel state and answers commands. Publishes arrive on the publisher
 * address (XSUB), stamped pushes leave on the subscriber address (XPUB), which
 * only forwards a topic to nodes that subscribed to it.
 */
import { randomBytes } from 'node:crypto';
import { XPublisher, XSubscriber, Router } from 'zeromq';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { carriedChannelProblem, carriedUserProblem, channelProblem, isValidUser } from '../protocol/names.js';
import { SendQueue, collectGrowth } from '../zmq/send-queue.js';
import { bindSecured, linkLimit, type BoundLink } from '../zmq/security.js';
import { channelTopic, userTopic } from '../cluster/topics.js';
import { DownKind, TICK_INTERVAL_MS, encodeHeader, parsePublish, tickFrames, WireError } from '../cluster/wire.js';
import { ChannelRegistry } from './channels.js';
import { HistoryBudget } from './history.js';
import { EncodedReply } from './encoded-reply.js';
import { checkJsonTextDepth } from '../protocol/payload.js';
import { LogLimiter, LoopGuard } from '../runtime/loop-guard.js';
import { encodeDirectPush, encodeMessagePush } from './push-encoding.js';
import { CommandHandlers } from './commands.js';

export interface PublishOutcome {
  offset: number;
  epoch: string;
}

const COLLECT_INTERVAL_MS = 10_000;
const OK = Buffer.from('ok');
/** Commands that publish: their refusals are counted with the publisher address' ones. */
const PUBLISH_COMMANDS = new Set(['publish', 'cs_message']);

export class Director {
  private xsub: XSubscriber | null = null;
  private xpub: XPublisher | null = null;
  private router: Router | null = null;
  private down: SendQueue | null = null;
  private replies: SendQueue | null = null;
  readonly channels: ChannelRegistry;
  /** This director's incarnation: edges that see it change know the director restarted. */
  readonly instance = randomBytes(9).toString('base64url');
  /** Topics some node holds a subscription to, as XPUB reports them. */
  readonly heldTopics = new Set<string>();
  private running: Promise<void>[] = [];
  private links: BoundLink[] = [];
  private collectTimer: NodeJS.Timeout | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  /** This run of the director, in its ticks; and the next tick's number. */
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

  constructor(
    readonly config: Config,
    readonly log: Logger,
    registry: Registry,
  ) {
    this.collectIdleMs = config.channel_idle_timeout * 1000;
    this.frameLimit = linkLimit(config);
    this.channels = new ChannelRegistry(
      { maxCount: config.history_size, maxAgeMs: config.history_ttl * 1000, maxBytes: config.history_channel_bytes },
      new HistoryBudget(config.history_total_bytes),
    );
    this.handlers = new CommandHandlers(this, log);
    this.loops = new LoopGuard(registry, log, (loop, err) => this.onFatal(`${loop} loop died: ${err instanceof Error ? err.message : String(err)}`));
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
      help: 'Messages sent down without nodes that stayed at their high-water mark longer than zmq_block_timeout (their edges see a gap)',
      registers: [registry],
      collect: collectGrowth(() => this.down?.shed ?? 0),
    });
    const channels = this.channels;
    const budget = channels.budget;
    new Gauge({
      name: 'tidings_director_history_bytes',
      help: 'Bytes charged by the history of every channel (pushes plus per-message bookkeeping; bound: history_total_bytes)',
      registers: [registry],
      collect() {
        this.set(budget.used);
      },
    });
    new Gauge({
      name: 'tidings_director_history_messages',
      help: 'Messages kept in the history of every channel',
      registers: [registry],
      collect() {
        this.set(budget.count);
      },
    });
    new Counter({
      name: 'tidings_director_history_evicted_total',
      help: 'History messages removed before their time because history_total_bytes was reached',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(budget.evicted);
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
    const hwm = this.config.zmq_high_water_mark;
    // noDrop: at the high-water mark sends wait instead of silently dropping.
    this.xpub = new XPublisher({ sendHighWaterMark: hwm, receiveHighWaterMark: hwm, noDrop: true, linger: 0 });
    this.xsub = new XSubscriber({ receiveHighWaterMark: hwm, sendHighWaterMark: hwm, linger: 0 });
    this.router = new Router({ sendHighWaterMark: hwm, receiveHighWaterMark: hwm, linger: 0 });
    this.links.push(await bindSecured(this.xpub, this.config.subscriber_address, 'subscriber', this.config, this.log));
    this.links.push(await bindSecured(this.xsub, this.config.publisher_address, 'publisher', this.config, this.log));
    this.links.push(await bindSecured(this.router, this.config.command_address, 'command', this.config, this.log));
    // XSUB: subscribe to everything published to us.
    await this.xsub.send(Buffer.from([1]));
    // A node that stops reading holds the director back at most twice zmq_block_timeout (then its edges see a gap):
    // longer than a forwarder waits for one of its edges, so a stalled edge costs its node nothing.
    this.down = new SendQueue(this.xpub, hwm, this.log, 'director-down', { maxBlockMs: 2 * this.config.zmq_block_timeout * 1000 });
    this.replies = new SendQueue(this.router, hwm, this.log, 'director-replies');
    this.running.push(this.publishLoop(this.xsub), this.subscriptionLoop(this.xpub), this.commandLoop(this.router));
    this.collectTimer = setInterval(() => this.collect(), Math.min(COLLECT_INTERVAL_MS, Math.max(250, this.collectIdleMs / 4)));
    this.collectTimer.unref();
    this.tickTimer = setInterval(() => this.tick(), TICK_INTERVAL_MS);
    this.tickTimer.unref();
    this.log.info(
      {
        subscriber: this.config.subscriber_address,
        publisher: this.config.publisher_address,
        command: this.config.command_address,
        curve: this.config.curve !== null,
      },
      'director listening',
    );
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.collectTimer) clearInterval(this.collectTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    await this.down?.drain(1000);
    await this.replies?.drain(500);
    this.down?.close();
    this.replies?.close();
    for (const s of [this.xsub, this.xpub, this.router]) s?.close();
    await Promise.allSettled(this.running);
    await Promise.allSettled(this.links.splice(0).map((l) => l.release()));
    this.xsub = this.xpub = this.router = null;
    this.log.info('director stopped');
  }

  /** Sequence and send a channel message. `dataJson` must be valid JSON text. */
  publishChannel(channel: string, dataJson: string, sender: string | null, noHistory: boolean): PublishOutcome {
    const problem = carriedChannelProblem(channel);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    const now = Date.now();
    const state = this.channels.getOrCreate(channel, now);
    const offset = state.next(now);
    const push = encodeMessagePush(channel, offset, state.epoch, sender, now, dataJson);
    if (!noHistory) state.history.add(offset, now, push);
    this.sendDown([channelTopic(channel), encodeHeader(DownKind.Message, offset, state.epoch), push]);
    this.publishedChannel++;
    for (const o of this.pushObservers) o('channel', channel, push, null);
    return { offset, epoch: state.epoch };
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
  probe(kind: 'channel' | 'user', name: string, token: string): PublishOutcome {
    const body = Buffer.from(JSON.stringify({ token }));
    if (kind === 'channel') {
      const problem = carriedChannelProblem(name);
      if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
      const state = this.channels.getOrCreate(name, Date.now());
      this.sendDown([channelTopic(name), encodeHeader(DownKind.Probe, state.offset, state.epoch), body]);
      return { offset: state.offset, epoch: state.epoch };
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

  /** The next tick to every edge; skipped (not numbered) while the down queue is full. */
  private tick(): void {
    if (this.down?.push(tickFrames(this.run, this.tickSeq))) this.tickSeq++;
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
      // The door of every ZeroMQ publisher: nothing deeper than every subscriber's encoder takes gets in.
      checkJsonTextDepth(p.data);
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
      // ZeroMQ publishes are native: they name channels and users by the native rules (docs/protocol.md).
      if (p.target === 'channel') {
        const problem = channelProblem(p.name);
        if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
        this.publishChannel(p.name, p.data, sender, p.noHistory);
      } else {
        if (!isValidUser(p.name)) throw new TidingsError(ErrorCodes.INVALID_USER, 'user must be 1-200 characters without control characters');
        this.publishUser(p.name, p.data, sender);
      }
    } catch (err) {
      const code = err instanceof TidingsError ? err.code : err instanceof WireError ? ErrorCodes.BAD_REQUEST.code : ErrorCodes.INTERNAL.code;
      this.rejected.inc({ code: String(code), door: 'publisher' });
      // A PUB socket has no way back to the worker: the rejection is logged with its code.
      const { log, skipped } = this.rejectionLogs.take(String(code));
      if (log) this.log.warn({ code, err: (err as Error).message, ...(skipped > 0 ? { notLogged: skipped } : {}) }, 'rejected a message on the publisher address');
    }
  }

  private publishLoop(xsub: XSubscriber): Promise<void> {
    return this.loops.run(
      'director-publish',
      xsub,
      (frames) => {
        this.handleInbound(frames as Buffer[]);
        if (this.down!.full) return this.down!.space();
        return undefined;
      },
      () => this.stopping,
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
      () => this.stopping,
    );
  }

  private commandLoop(router: Router): Promise<void> {
    return this.loops.run('director-commands', router, (frames) => this.onCommand(frames as Buffer[]), () => this.stopping);
  }

  /** One command: its failure, even in encoding the reply, is answered and counted, never thrown. */
  private onCommand(frames: Buffer[]): void {
    if (frames.length < 4) return;
    const route = frames.slice(0, frames.length - 3);
    const [id, method, body] = frames.slice(frames.length - 3) as [Buffer, Buffer, Buffer];
    const fail = (err: unknown): void => {
      const e = err instanceof TidingsError ? err : new TidingsError(ErrorCodes.INTERNAL);
      // Publishes refused here passed no other door (an edge refuses what it sees first): counted.
      if (PUBLISH_COMMANDS.has(method.toString('utf8'))) this.rejected.inc({ code: String(e.code), door: 'command' });
      if (!(err instanceof TidingsError)) this.log.error({ err, method: method.toString('utf8').slice(0, 64) }, 'command failed');
      this.reply([...route, id, Buffer.from('error'), Buffer.from(JSON.stringify(e.toBody()))]);
    };
    this.handlers
      .dispatch(method.toString('utf8'), body)
      .then((result) => {
        // An encoded result (a history page) is its body and the raw pushes after it.
        let parts: Buffer[];
        try {
          parts = result instanceof EncodedReply ? [result.body, ...result.frames] : [Buffer.from(JSON.stringify(result ?? null))];
        } catch (err) {
          this.loops.failed('director-replies', err, { method: method.toString('utf8').slice(0, 64) });
          fail(new TidingsError(ErrorCodes.INTERNAL, 'the reply could not be encoded'));
          return;
        }
        let largest = 0;
        for (const f of parts) largest = Math.max(largest, f.length);
        if (largest <= this.frameLimit) {
          this.reply([...route, id, OK, ...parts]);
          return;
        }
        // The caller's socket would drop this link for a larger frame: answer with the error instead.
        const e = new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `reply frame of ${largest} bytes > the node link limit ${this.frameLimit}; ask for less`);
        this.log.warn({ method: method.toString('utf8').slice(0, 64), bytes: largest }, 'command reply too large for the link');
        this.reply([...route, id, Buffer.from('error'), Buffer.from(JSON.stringify(e.toBody()))]);
      }, fail)
      .catch((err) => this.loops.failed('director-commands', err));
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

